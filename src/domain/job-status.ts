/**
 * The job state machine, in one place so that dispatch, completion and the tests agree:
 * queued → dispatched → running (optional) → success | failure, back to queued when an
 * attempt is retried, and cancelled from any status that is not final. A final status never
 * changes. The functions that write a job's status (src/lifecycle/) take their allowed
 * starting statuses from JOB_TRANSITIONS.
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

export const FINAL_STATUSES = ['success', 'failure', 'cancelled'] as const;
export const OPEN_STATUSES = ['queued', 'dispatched', 'running'] as const;
export type FinalStatus = (typeof FINAL_STATUSES)[number];
export type OpenStatus = (typeof OPEN_STATUSES)[number];

export function isFinal(status: JobStatus): status is FinalStatus {
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

interface Transition {
  readonly from: readonly OpenStatus[];
  readonly to: readonly JobStatus[];
}

/**
 * Every way a job's status changes: the statuses it may start from and those it may end in.
 * Each has one function in src/lifecycle/, whose SQL matches only jobs in `from`.
 */
export const JOB_TRANSITIONS = {
  /** A dispatcher or a pull worker claims the job: its next attempt starts, under a lease. */
  claim: { from: ['queued'], to: ['dispatched'] },
  /** The handler says it has started (a heartbeat with `status: running`). */
  start: { from: ['dispatched', 'running'], to: ['running'] },
  /** The handler reports the outcome (the completion route, or a command that ended). */
  complete: { from: ['queued', 'dispatched', 'running'], to: ['success', 'failure'] },
  /** The attempt failed in a way another may fix: queued again, or failure at the last one. */
  retry: { from: ['dispatched', 'running'], to: ['queued', 'failure'] },
  /** The attempt failed in a way retrying cannot fix. */
  fail: { from: ['dispatched', 'running'], to: ['failure'] },
  /** The holder of the attempt stopped renewing its lease: like a retry. */
  expireLease: { from: ['dispatched', 'running'], to: ['queued', 'failure'] },
  /** The deadline passed before the job finished. */
  timeOut: { from: ['queued', 'dispatched', 'running'], to: ['failure'] },
  /** The process holding the attempt shut down: the attempt is given back, due at once. */
  release: { from: ['dispatched', 'running'], to: ['queued'] },
  /** A caller cancelled the job. */
  cancel: { from: ['queued', 'dispatched', 'running'], to: ['cancelled'] },
} as const satisfies Record<string, Transition>;

export type TransitionName = keyof typeof JOB_TRANSITIONS;

/** Whether some transition moves a job from `from` to another status `to`. */
export function canTransition(from: JobStatus, to: JobStatus): boolean {
  if (from === to) return false;
  return Object.values(JOB_TRANSITIONS).some(
    (move: Transition) =>
      (move.from as readonly JobStatus[]).includes(from) && move.to.includes(to),
  );
}
