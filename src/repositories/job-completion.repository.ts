import type { Queryable } from '../db/database.js';
import { JOB_COLUMNS, toJob, type Job, type JobRow } from './jobs.repository.js';
import { jobFiresSubscription } from './subscriptions.repository.js';

/**
 * The job rows a completion reads: locked until it commits, with the first completion's record
 * (replayed to a repeat) and the trace the job was started in.
 */

export interface CompletionRecord {
  request: { status: 'success' | 'failure'; output: unknown; error: unknown };
  response: { status_code: number; body: unknown };
}

/** What a completion reads of its job beyond the job itself. */
interface CompletionColumns {
  completion: CompletionRecord | null;
  traceparent: string | null;
}

/** A job locked for completion. */
export type LockedJob = Job & CompletionColumns;

/** The job a handler completes, locked until the completion commits; by id alone. */
export async function lockJobForCompletion(
  q: Queryable,
  jobId: string,
): Promise<LockedJob | undefined> {
  const { rows } = await q.query<JobRow & CompletionColumns>(
    `select ${JOB_COLUMNS}, completion, traceparent from jobs where job_id = $1 for update`,
    [jobId],
  );
  const row = rows[0];
  if (row === undefined) return undefined;
  const { completion, traceparent, ...job } = row;
  return { ...toJob(job), completion, traceparent };
}

/** A job locked for completion, and whether its successful inference would fire a subscription. */
export type JobToComplete = LockedJob & { subscribed: boolean };

/**
 * The jobs a worker completes together, locked until the completion commits, by id alone.
 * They are locked in job id order, so two such requests over the same jobs wait for each
 * other instead of deadlocking. `subscribed` says whether a subscription matches the job
 * now: only those jobs need the one-at-a-time completion that fires subscriptions.
 */
export async function lockJobsForCompletion(
  q: Queryable,
  jobIds: readonly string[],
): Promise<Map<string, JobToComplete>> {
  const { rows } = await q.query<JobRow & CompletionColumns & { subscribed: boolean }>(
    `select ${JOB_COLUMNS}, completion, traceparent, ${jobFiresSubscription('j')} as subscribed
     from jobs j where job_id = any($1::text[])
     order by job_id
     for update of j`,
    [jobIds],
  );
  const jobs = new Map<string, JobToComplete>();
  for (const { completion, traceparent, subscribed: fires, ...row } of rows) {
    jobs.set(row.job_id, { ...toJob(row), completion, traceparent, subscribed: fires });
  }
  return jobs;
}
