/**
 * The sets of jobs that partial indexes hold (migration 000010), as the condition a statement
 * states to read one of them. Each pairs the statuses with a time column the status implies
 * (a check constraint keeps that true): statements about one job state its possible statuses
 * but never these columns, so the planner cannot take a whole partial index for the job's own
 * key. `alias` qualifies the columns (`f` gives `f.status`).
 */

const qualify = (alias: string | undefined) => (alias === undefined ? '' : `${alias}.`);

/** Dispatched and running jobs: `jobs_version_in_flight`, `jobs_client_in_flight`. */
export function inFlight(alias?: string): string {
  const a = qualify(alias);
  return `${a}status in ('dispatched', 'running') and ${a}dispatched_at is not null`;
}

/** Queued, dispatched and running jobs: `jobs_open_deadlines`. */
export function open(alias?: string): string {
  const a = qualify(alias);
  return `${a}status in ('queued', 'dispatched', 'running') and ${a}finished_at is null`;
}

/** Succeeded, failed and cancelled jobs: `jobs_finished`. */
export function finished(alias?: string): string {
  const a = qualify(alias);
  return `${a}status in ('success', 'failure', 'cancelled') and ${a}finished_at is not null`;
}
