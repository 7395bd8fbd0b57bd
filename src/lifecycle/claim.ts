import type { Grant } from '../auth/caller.js';
import type { Queryable } from '../db/database.js';
import type { Handler, HandlerType } from '../domain/handlers.js';
import type { Job } from '../repositories/jobs.repository.js';
import { iso, json } from '../repositories/rows.js';
import { startsFrom } from './transition-sql.js';

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
    `handler_type <> 'worker' and run_at <= now() and handler_type = any($4::text[])`,
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
    `handler_type = 'worker' and model_id = $4 and model_version = $5 and run_at <= now()
     and ($6::jsonb is null or $6::jsonb ? client_id)`,
    [workerId, leaseS, limit, modelId, modelVersion, clients === '*' ? null : json(clients)],
  );
}

/**
 * `$1` holder, `$2` lease seconds, `$3` limit; `where` narrows the queued jobs to claim. Highest
 * priority first, then round-robin across (client, domain) lanes by `lane_seq` (migration
 * 000006 says how it is kept), then oldest first: one scan of the queue's ready index.
 */
async function claim(q: Queryable, where: string, values: unknown[]): Promise<ClaimedJob[]> {
  const { rows } = await q.query<ClaimedRow>(
    `with picked as (
       select client_id, job_id from jobs
       where ${startsFrom('claim')} and ${where}
       order by priority desc, lane_seq, run_at, job_id
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

/** Handed-over jobs whose handler gave a reference to follow (TrueFoundry runs). */
export async function listFollowedJobs(
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
