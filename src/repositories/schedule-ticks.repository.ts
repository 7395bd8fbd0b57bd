import type { Queryable } from '../db/database.js';
import type { ScheduleAction, ScheduleKey } from './schedules.repository.js';

/**
 * The statements that fire a schedule's tick. Why they give exactly once is in migration
 * 000012: the tick owed is next_run_at, claimed with a row lock and moved on with a
 * compare-and-set, in the transaction that runs the action.
 */

/** A schedule whose tick has come: its key and the tick it owes. */
export interface DueSchedule extends ScheduleKey {
  due: Date;
}

/** A due schedule locked for firing, with what the firing needs. */
export interface ClaimedTick {
  cron: string;
  timezone: string;
  action: ScheduleAction;
  priority: number | null;
  /** The database's clock at the start of the firing transaction. */
  now: Date;
}

/** What a tick did, to be recorded with the tick that comes next. */
export interface TickRecord {
  next: Date | null;
  /** Null when the action succeeded. */
  error: string | null;
  /** Set when the action started them; left as they were otherwise. */
  jobId?: string | null;
  batchId?: string | null;
}

/** Active schedules owed a tick by now, most overdue first (the partial index schedules_due). */
export async function listDueSchedules(q: Queryable, limit: number): Promise<DueSchedule[]> {
  const { rows } = await q.query<{
    client_id: string;
    domain_id: string;
    name: string;
    next_run_at: Date;
  }>(
    `select client_id, domain_id, name, next_run_at from schedules
     where status = 'active' and next_run_at <= now()
     order by next_run_at
     limit $1`,
    [limit],
  );
  return rows.map((row) => ({
    clientId: row.client_id,
    domainId: row.domain_id,
    name: row.name,
    due: row.next_run_at,
  }));
}

/**
 * Locks the schedule if it still owes `due` and `due` has come; undefined when another process
 * holds it (it is firing that tick) or has already moved it on, or it was paused, changed or
 * deleted. A paused schedule owes nothing (next_run_at is null), so the status need not be
 * named, which keeps this statement on the primary key.
 */
export async function claimTick(
  tx: Queryable,
  schedule: DueSchedule,
): Promise<ClaimedTick | undefined> {
  const { rows } = await tx.query<ClaimedTick>(
    `select cron, timezone, action, priority, now() as now from schedules
     where client_id = $1 and domain_id = $2 and name = $3
       and next_run_at = $4::timestamptz and next_run_at <= now()
     for update skip locked`,
    [schedule.clientId, schedule.domainId, schedule.name, schedule.due.toISOString()],
  );
  return rows[0];
}

/**
 * Moves the schedule from the tick it owed to the next one and records what the tick did, if
 * it still owes `due` (the compare-and-set; under the lock of claimTick it does). False when it
 * no longer did, and the caller must roll back.
 */
export async function recordTick(
  tx: Queryable,
  schedule: DueSchedule,
  tick: TickRecord,
): Promise<boolean> {
  const { rowCount } = await tx.query(
    `update schedules
     set next_run_at = $5, last_run_at = date_trunc('milliseconds', now()), last_error = $6,
         last_job_id = case when $7::boolean then $8 else last_job_id end,
         last_batch_id = case when $9::boolean then $10 else last_batch_id end
     where client_id = $1 and domain_id = $2 and name = $3 and next_run_at = $4::timestamptz`,
    [
      schedule.clientId,
      schedule.domainId,
      schedule.name,
      schedule.due.toISOString(),
      tick.next?.toISOString() ?? null,
      tick.error,
      tick.jobId !== undefined,
      tick.jobId ?? null,
      tick.batchId !== undefined,
      tick.batchId ?? null,
    ],
  );
  return rowCount === 1;
}
