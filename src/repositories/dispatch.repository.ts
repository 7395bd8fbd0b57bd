import type { Grant } from '../auth/caller.js';
import type { Queryable } from '../db/database.js';
import type { JobError } from '../domain/delivery.js';
import type { Handler, HandlerType } from '../domain/handlers.js';
import { iso, json } from './rows.js';
import type { Job } from './jobs.repository.js';

/** A job claimed for one attempt, with what delivering it needs. */
export interface ClaimedJob extends Pick<
  Job,
  | 'job_id'
  | 'client_id'
  | 'domain_id'
  | 'service_id'
  | 'assignment_id'
  | 'assignment_key'
  | 'model_id'
  | 'model_version'
  | 'job_type'
  | 'input'
  | 'features'
  | 'config'
  | 'trigger'
  | 'attempt'
  | 'max_attempts'
  | 'deadline'
  | 'created_at'
> {
  handler: Handler;
}

interface ClaimedRow extends Omit<ClaimedJob, 'deadline' | 'created_at'> {
  deadline_at: Date;
  created_at: Date;
}

const CLAIMED = `j.job_id, j.client_id, j.domain_id, j.service_id, j.assignment_id, j.assignment_key,
  j.model_id, j.model_version, j.job_type, j.input, j.features, j.config, j.trigger, j.attempt,
  j.max_attempts, j.deadline_at, j.created_at, v.handler`;

function toClaimed(row: ClaimedRow): ClaimedJob {
  const { deadline_at, created_at, ...rest } = row;
  return { ...rest, deadline: iso(deadline_at), created_at: iso(created_at) };
}

// Claiming starts the next attempt: status dispatched, attempt + 1, a lease held by `holder`.
// SKIP LOCKED lets any number of processes claim at once without waiting on or sharing a job.
const CLAIM_SET = `status = 'dispatched', attempt = j.attempt + 1, locked_by = $1,
  lease_expires_at = now() + make_interval(secs => $2), dispatched_at = now(), updated_at = now(),
  handler_ref = null`;

/** Claims up to `limit` queued jobs whose handler PIE pushes to (http, command, truefoundry). */
export function claimPushJobs(
  q: Queryable,
  holder: string,
  leaseS: number,
  limit: number,
  kinds: readonly HandlerType[],
): Promise<ClaimedJob[]> {
  return claim(
    q,
    `status = 'queued' and handler_type <> 'worker' and run_at <= now()
     and handler_type = any($4::text[])`,
    [holder, leaseS, limit, kinds],
  );
}

/**
 * Claims up to `limit` queued jobs of one model version for a pull worker, of the clients
 * its token names only.
 */
export function claimWorkerJobs(
  q: Queryable,
  modelId: string,
  modelVersion: string,
  clients: Grant,
  workerId: string,
  leaseS: number,
  limit: number,
): Promise<ClaimedJob[]> {
  return claim(
    q,
    `status = 'queued' and handler_type = 'worker'
     and model_id = $4 and model_version = $5 and run_at <= now()
     and ($6::jsonb is null or $6::jsonb ? client_id)`,
    [workerId, leaseS, limit, modelId, modelVersion, clients === '*' ? null : json(clients)],
  );
}

/** `$1` holder, `$2` lease seconds, `$3` limit; `where` picks the queued jobs to claim. */
async function claim(q: Queryable, where: string, values: unknown[]): Promise<ClaimedJob[]> {
  const { rows } = await q.query<ClaimedRow>(
    `with picked as (
       select client_id, job_id from jobs
       where ${where}
       order by run_at, job_id
       limit $3
       for update skip locked
     )
     update jobs j set ${CLAIM_SET}
     from picked, model_versions v
     where j.client_id = picked.client_id and j.job_id = picked.job_id
       and v.model_id = j.model_id and v.model_version = j.model_version
     returning ${CLAIMED}`,
    values,
  );
  return rows.map(toClaimed);
}

// A job going back to the queue takes its version's current handler kind, so a version
// switched between push and pull meanwhile is claimed by the right side.
const followHandler = (table: string) => `handler_type = coalesce(
  (select v.handler->>'type' from model_versions v
   where v.model_id = ${table}.model_id and v.model_version = ${table}.model_version),
  ${table}.handler_type)`;

// Every write about an attempt is fenced on it: a late word about an older attempt changes nothing.
const FENCE = `job_id = $1 and attempt = $2 and status in ('dispatched', 'running')`;

/** The handler accepted the job: the lease ends, the deadline (and the callback) take over. */
export async function markHandedOver(
  q: Queryable,
  jobId: string,
  attempt: number,
  reference: string | null,
): Promise<boolean> {
  const { rowCount } = await q.query(
    `update jobs set locked_by = null, lease_expires_at = null, handler_ref = $3, updated_at = now()
     where ${FENCE}`,
    [jobId, attempt, reference],
  );
  return rowCount > 0;
}

/**
 * The attempt failed in a way another attempt may fix: back to the queue after a backoff (or
 * `retryAfterMs` when the handler said when), unless attempts are used up, then failure.
 * Returns the status the job ends up in, or undefined when the attempt was already over.
 */
export async function retryOrFail(
  q: Queryable,
  jobId: string,
  attempt: number,
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
     where ${FENCE}
     returning status`,
    [jobId, attempt, json(error), retryAfterMs ?? null],
  );
  return rows[0]?.status;
}

/** Fails the attempt for good. */
export async function failAttempt(
  q: Queryable,
  jobId: string,
  attempt: number,
  error: JobError,
): Promise<boolean> {
  const { rowCount } = await q.query(
    `update jobs set status = 'failure', error = $3::jsonb, last_error = $3::jsonb,
       finished_at = now(), locked_by = null, lease_expires_at = null, updated_at = now()
     where ${FENCE}`,
    [jobId, attempt, json(error)],
  );
  return rowCount > 0;
}

/** Extends the lease of an attempt still held by `holder`; false when it no longer is. */
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
     where ${FENCE}
     returning status`,
    [jobId, attempt, leaseS, markRunning],
  );
  return rows[0];
}

/**
 * Gives back every job `holder` still holds under a lease, when its process shuts down: each
 * goes back to `queued`, due at once, with the attempt it was on given back (`attempt - 1`),
 * since the handler did not fail it; the next claim delivers that attempt again, with the same
 * webhook id. Jobs a handler accepted (no lease) are not held and stay with their handler.
 * Returns the wake-up keys of the released jobs.
 */
export async function releaseHeldJobs(q: Queryable, holder: string): Promise<ReleasedJob[]> {
  const { rows } = await q.query<ReleasedJob>(
    `update jobs set status = 'queued', attempt = attempt - 1, run_at = now(),
       last_error = jsonb_build_object('code', 'shutdown', 'message',
         'attempt ' || attempt || ' was released by ' || locked_by || ' when it shut down'),
       ${followHandler('jobs')},
       locked_by = null, lease_expires_at = null, updated_at = now()
     where lease_expires_at is not null and locked_by = $1 and status in ('dispatched', 'running')
     returning job_id, model_id, model_version, handler_type`,
    [holder],
  );
  return rows;
}

export interface ReleasedJob {
  job_id: string;
  model_id: string;
  model_version: string;
  handler_type: string;
}

/**
 * Puts back jobs whose lease ran out (their holder died or went silent): another attempt after
 * a backoff, or failure once attempts are used up. Returns the failed jobs' types.
 */
export async function reapExpiredLeases(q: Queryable, limit: number): Promise<ReapedJob[]> {
  const { rows } = await q.query<ReapedJob>(
    `with expired as (
       select client_id, job_id, jsonb_build_object('code', 'lease_expired', 'message',
         'attempt ' || attempt || ' held by ' || coalesce(locked_by, '?') ||
         ' stopped renewing its lease') as error
       from jobs
       where lease_expires_at < now() and status in ('dispatched', 'running')
       order by lease_expires_at
       limit $1
       for update skip locked
     )
     update jobs j set
       status = case when j.attempt >= j.max_attempts then 'failure' else 'queued' end,
       error = case when j.attempt >= j.max_attempts then expired.error end,
       finished_at = case when j.attempt >= j.max_attempts then now() end,
       last_error = expired.error,
       run_at = now() + pie_retry_delay(j.attempt),
       ${followHandler('j')},
       locked_by = null, lease_expires_at = null, updated_at = now()
     from expired
     where j.client_id = expired.client_id and j.job_id = expired.job_id
     returning j.job_type, j.status`,
    [limit],
  );
  return rows;
}

export interface ReapedJob {
  job_type: string;
  status: 'queued' | 'failure';
}

/** Fails open jobs past their deadline with error.code "timeout" (SPEC section 5). */
export async function failOverdueJobs(q: Queryable, limit: number): Promise<ReapedJob[]> {
  const { rows } = await q.query<ReapedJob>(
    `with overdue as (
       select client_id, job_id from jobs
       where deadline_at < now() and status in ('queued', 'dispatched', 'running')
       order by deadline_at
       limit $1
       for update skip locked
     )
     update jobs j set status = 'failure',
       error = jsonb_build_object('code', 'timeout', 'message',
         'the job did not finish by its deadline ' || to_char(j.deadline_at at time zone 'UTC',
         'YYYY-MM-DD"T"HH24:MI:SS"Z"'), 'attempt', j.attempt),
       finished_at = now(), locked_by = null, lease_expires_at = null, updated_at = now()
     from overdue
     where j.client_id = overdue.client_id and j.job_id = overdue.job_id
     returning j.job_type, j.status`,
    [limit],
  );
  return rows;
}

/** Handed-over jobs whose handler gave a reference to follow (TrueFoundry runs). */
export async function listWatchedRuns(
  q: Queryable,
  handlerType: HandlerType,
  limit: number,
): Promise<(ClaimedJob & { handler_ref: string })[]> {
  const { rows } = await q.query<ClaimedRow & { handler_ref: string }>(
    `select ${CLAIMED}, j.handler_ref from jobs j
     join model_versions v on v.model_id = j.model_id and v.model_version = j.model_version
     where j.handler_ref is not null and j.status in ('dispatched', 'running')
       and j.handler_type = $1
     limit $2`,
    [handlerType, limit],
  );
  return rows.map((row) => ({ ...toClaimed(row), handler_ref: row.handler_ref }));
}
