import type { Queryable } from '../db/database.js';
import type { JobError } from '../domain/delivery.js';
import { json } from '../repositories/rows.js';
import type { EmitJobEvent } from './job-events.js';
import { PUSH_KEY, versionKey, wakeKey } from './job-wakeups.js';
import { followHandler, startsFrom } from './transition-sql.js';

/**
 * The largest attempt a job can reach (`attempt` is an int4 column). A reported attempt past it
 * is never the current one, and PostgreSQL would refuse it as a parameter, so callers compare
 * against this before sending one.
 */
export const MAX_ATTEMPT = 2_147_483_647;

/**
 * Transitions of one attempt, each one statement. Every write about an attempt is fenced on
 * it: a late word about an older attempt changes nothing.
 */
const fence = (transition: 'retry' | 'fail' | 'start') =>
  `job_id = $1 and attempt = $2 and ${startsFrom(transition)}`;

/** The attempt being written about, and what its events need. */
export interface AttemptRef {
  job_id: string;
  attempt: number;
  job_type: string;
  model_id: string;
  model_version: string;
}

/**
 * The handler accepted the job: the lease ends, the deadline (and the callback) take over.
 * Not a status change: the job stays dispatched (or running) until its handler reports.
 */
export async function handOver(
  q: Queryable,
  attempt: Pick<AttemptRef, 'job_id' | 'attempt'>,
  reference: string | null,
): Promise<boolean> {
  const { rowCount } = await q.query(
    `update jobs set locked_by = null, lease_expires_at = null, handler_ref = $3, updated_at = now()
     where job_id = $1 and attempt = $2 and status in ('dispatched', 'running')`,
    [attempt.job_id, attempt.attempt, reference],
  );
  return rowCount > 0;
}

/**
 * Extends the lease of an attempt that is still current; with `markRunning`, the job moves
 * to running (the handler says it has started). Undefined when the attempt is over.
 */
export async function renewLease(
  q: Queryable,
  jobId: string,
  attempt: number,
  leaseS: number,
  markRunning: boolean,
): Promise<{ status: string } | undefined> {
  const { rows } = await q.query<{ status: string }>(
    `update jobs set lease_expires_at = now() + make_interval(secs => $3),
       status = case when $4 then 'running' else status end, updated_at = now()
     where ${fence('start')}
     returning status`,
    [jobId, attempt, leaseS, markRunning],
  );
  return rows[0];
}

/**
 * The attempt failed in a way another attempt may fix: back to the queue after a backoff (or
 * `retryAfterMs` when the handler said when), unless attempts are used up, then failure.
 * Returns the status the job ends up in, or undefined when the attempt was already over.
 */
export async function retryOrFail(
  q: Queryable,
  emit: EmitJobEvent,
  attempt: AttemptRef,
  error: JobError,
  retryAfterMs: number | undefined,
): Promise<'queued' | 'failure' | undefined> {
  const { rows } = await q.query<{ status: 'queued' | 'failure' }>(
    `update jobs set
       status = case when attempt >= max_attempts then 'failure' else 'queued' end,
       error = case when attempt >= max_attempts then $3::jsonb end,
       finished_at = case when attempt >= max_attempts then now() end,
       last_error = $3::jsonb,
       run_at = now() + coalesce(make_interval(secs => $4::double precision / 1000),
                                 pie_retry_delay(attempt)),
       ${followHandler('jobs')},
       locked_by = null, lease_expires_at = null, updated_at = now()
     where ${fence('retry')}
     returning status`,
    [attempt.job_id, attempt.attempt, json(error), retryAfterMs ?? null],
  );
  const status = rows[0]?.status;
  if (status === 'failure') emit({ type: 'finished', jobType: attempt.job_type, status });
  if (status === 'queued') {
    // Due again at once: announce it to both sides, since the handler may have changed kind.
    const dueNow = retryAfterMs === 0;
    emit({
      type: 'retried',
      jobType: attempt.job_type,
      reason: 'retry',
      dueNow,
      wake: dueNow ? [versionKey(attempt.model_id, attempt.model_version), PUSH_KEY] : [],
    });
  }
  return status;
}

/** Fails the attempt for good; false when it was already over. */
export async function failAttempt(
  q: Queryable,
  emit: EmitJobEvent,
  attempt: AttemptRef,
  error: JobError,
): Promise<boolean> {
  const { rowCount } = await q.query(
    `update jobs set status = 'failure', error = $3::jsonb, last_error = $3::jsonb,
       finished_at = now(), locked_by = null, lease_expires_at = null, updated_at = now()
     where ${fence('fail')}`,
    [attempt.job_id, attempt.attempt, json(error)],
  );
  if (rowCount > 0) emit({ type: 'finished', jobType: attempt.job_type, status: 'failure' });
  return rowCount > 0;
}

/**
 * Gives back every job `holder` still holds under a lease, when its process shuts down: each
 * goes back to `queued`, due at once, with the attempt it was on given back (`attempt - 1`),
 * since the handler did not fail it; the next claim delivers that attempt again, with the same
 * webhook id. Jobs a handler accepted (no lease) are not held and stay with their handler.
 * Returns how many were released.
 */
export async function releaseHeldJobs(
  q: Queryable,
  emit: EmitJobEvent,
  holder: string,
): Promise<number> {
  const { rows } = await q.query<{
    job_type: string;
    model_id: string;
    model_version: string;
    handler_type: string;
  }>(
    `update jobs set status = 'queued', attempt = attempt - 1, run_at = now(),
       last_error = jsonb_build_object('code', 'shutdown', 'message',
         'attempt ' || attempt || ' was released by ' || locked_by || ' when it shut down'),
       ${followHandler('jobs')},
       locked_by = null, lease_expires_at = null, updated_at = now()
     where lease_expires_at is not null and locked_by = $1 and ${startsFrom('release')}
     returning job_type, model_id, model_version, handler_type`,
    [holder],
  );
  for (const job of rows) {
    emit({
      type: 'retried',
      jobType: job.job_type,
      reason: 'released',
      dueNow: true,
      wake: [wakeKey(job)],
    });
  }
  return rows.length;
}
