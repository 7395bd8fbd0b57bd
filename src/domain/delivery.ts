import type { JobTrigger } from './job-trigger.js';

/**
 * What a model handler receives (the envelope), and what handing a job to it can come to (a
 * delivery outcome). Handler adapters (src/dispatch/handlers/) know one handler kind each and
 * report an outcome; the use cases record it against the job's attempt.
 */

/** The job as a handler receives it, whatever the handler kind. */
export interface Envelope {
  job_id: string;
  job_type: string;
  attempt: number;
  model_id: string;
  model_version: string;
  client_id: string;
  domain_id: string;
  service_id: string | null;
  assignment_id: string;
  assignment_key: string;
  config: Record<string, unknown>;
  input: Record<string, unknown>;
  features: Record<string, unknown> | null;
  trigger: JobTrigger | null;
  /** ISO 8601: the job fails with error.code "timeout" if not finished by then. */
  deadline: string;
  /** POST {status, output?, error?} to url with `Authorization: Bearer <token>`. */
  callback: { url: string; heartbeat_url: string; token: string };
  /**
   * The W3C trace context to continue (`00-<trace id>-<span id>-<flags>`): the delivery's span
   * when the dispatching process traces, else the one stored with the job. Absent when the job
   * has none (tracing was off where it started). Send it back as the completion's
   * `traceparent` header to join the job's trace.
   */
  traceparent?: string;
}

export interface JobError {
  code: string;
  message: string;
  [detail: string]: unknown;
}

export type DeliveryOutcome =
  /** The handler has the job; its completion arrives later through the callback. */
  | { kind: 'handed-over'; reference?: string }
  /** The handler ran the job to the end (a local command). */
  | { kind: 'finished'; status: 'success' | 'failure'; output?: unknown; error?: JobError }
  /** A transient failure (429, 5xx, timeout, connection refused): try again later. */
  | { kind: 'retry'; error: JobError; retryAfterMs?: number }
  /** A failure retrying cannot fix (a 4xx, a redirect, a refused address): fail the job. */
  | { kind: 'fail'; error: JobError };
