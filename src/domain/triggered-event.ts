/**
 * What one subscription did when its event came: the job it started, or why it could not
 * start one (inactive domain, archived assignment, contract mismatch, cascade too deep).
 */
export type TriggeredEvent =
  { subscription_id: string; job_id: string } | { subscription_id: string; error: string };
