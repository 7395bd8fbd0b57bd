import type { Queryable } from '../db/database.js';
import { open } from '../repositories/indexed-job-sets.js';
import type { EmitJobEvent } from './job-events.js';
import { followHandler, startsFrom } from './transition-sql.js';

interface ExpiredRow {
  job_type: string;
  status: 'queued' | 'failure';
}

/**
 * Puts back up to `limit` jobs whose lease ran out (their holder died or went silent): another
 * attempt after a backoff, or failure once attempts are used up. Returns how many it handled.
 */
export async function expireLeases(
  q: Queryable,
  emit: EmitJobEvent,
  limit: number,
): Promise<number> {
  const { rows } = await q.query<ExpiredRow>(
    `with expired as (
       select client_id, job_id, jsonb_build_object('code', 'lease_expired', 'message',
         'attempt ' || attempt || ' held by ' || coalesce(locked_by, '?') ||
         ' stopped renewing its lease') as error
       from jobs
       where lease_expires_at < now() and ${startsFrom('expireLease')}
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
  for (const job of rows) {
    if (job.status === 'failure') {
      emit({ type: 'finished', jobType: job.job_type, status: 'failure' });
    } else {
      // Due after a backoff: the dispatcher's poll and workers' waits find it then.
      emit({
        type: 'retried',
        jobType: job.job_type,
        reason: 'lease_expired',
        dueNow: false,
        wake: [],
      });
    }
  }
  return rows.length;
}

/** Fails up to `limit` open jobs past their deadline with error.code "timeout". */
export async function timeOutOverdueJobs(
  q: Queryable,
  emit: EmitJobEvent,
  limit: number,
): Promise<number> {
  const { rows } = await q.query<{ job_type: string }>(
    `with overdue as (
       select client_id, job_id from jobs
       where deadline_at < now() and ${startsFrom('timeOut')} and ${open()}
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
     returning j.job_type`,
    [limit],
  );
  for (const job of rows) emit({ type: 'finished', jobType: job.job_type, status: 'failure' });
  return rows.length;
}
