/**
 * The job state machine (SPEC section 4), in one place so that dispatch and completion agree:
 * queued → dispatched → running (optional) → success | failure, and cancelled from any
 * non-final status. A final status never changes.
 */
export const JOB_STATUSES = [
  'queued',
  'dispatched',
  'running',
  'success',
  'failure',
  'cancelled',
] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export const FINAL_STATUSES: readonly JobStatus[] = ['success', 'failure', 'cancelled'];
export const OPEN_STATUSES: readonly JobStatus[] = ['queued', 'dispatched', 'running'];

export function isFinal(status: JobStatus): boolean {
  switch (status) {
    case 'queued':
    case 'dispatched':
    case 'running':
      return false;
    case 'success':
    case 'failure':
    case 'cancelled':
      return true;
  }
}

/** Whether a job in `from` may move to `to`. */
export function canTransition(from: JobStatus, to: JobStatus): boolean {
  if (isFinal(from)) return false;
  switch (to) {
    case 'queued':
      // A dispatched or running job goes back to the queue when its attempt is retried.
      return from === 'dispatched' || from === 'running';
    case 'dispatched':
      return from === 'queued';
    case 'running':
      return from === 'dispatched';
    case 'success':
    case 'failure':
    case 'cancelled':
      return true;
  }
}
