import type { Queryable } from '../db/database.js';
import type { JobStatus } from '../domain/job-status.js';
import { iso } from './rows.js';

/**
 * The job event log (migration 000014): rows written by triggers on `jobs`, numbered by the
 * sequencer after commit, read by position.
 */

/** One job created, or one change of a job's status, as the event stream sends it. */
export interface JobEventRecord {
  position: number;
  client_id: string;
  domain_id: string;
  job_id: string;
  status: string;
  /** null when the job was created */
  previous_status: string | null;
  job_type: string;
  service_id: string | null;
  model_id: string;
  model_version: string;
  attempt: number;
  updated_at: string;
}

export interface LogBounds {
  /** The last position given. */
  head: number;
  /** Retention deleted every event up to and including this position. */
  prunedThrough: number;
}

// Positions are bigint in SQL; as text they reach JavaScript the same way from both drivers.
// Statements selecting these order by `job_events.position`: a bare `position` in ORDER BY
// names the output column, the text, and "10" sorts before "9".
const COLUMNS = `position::text as position, client_id, domain_id, job_id, status,
  previous_status, job_type, service_id, model_id, model_version, attempt,
  to_json(updated_at)#>>'{}' as updated_at`;

type Row = Omit<JobEventRecord, 'position'> & { position: string };

const toRecord = (row: Row): JobEventRecord => ({ ...row, position: Number(row.position) });

/**
 * Numbers up to `maxRows` committed rows; returns the head after. With `notify`, the same
 * statement sends `NOTIFY <channel>` when the head moved past `notify.after`: delivered when
 * the numbering commits, and one round trip a turn instead of two.
 */
export async function sequenceJobEvents(
  q: Queryable,
  maxRows: number,
  notify?: { channel: string; after: number },
): Promise<number> {
  const { rows } = await q.query<{ head: string }>(
    `select head::text as head,
       (select pg_notify($2, '') where $2::text is not null and head > $3) as notified
     from (select pie_sequence_job_events($1) as head) turn`,
    [maxRows, notify?.channel ?? null, notify?.after ?? 0],
  );
  return Number(rows[0]?.head ?? 0);
}

export async function readLogBounds(q: Queryable): Promise<LogBounds> {
  const { rows } = await q.query<{ head: string; pruned_through: string }>(
    'select head::text as head, pruned_through::text as pruned_through from job_event_log',
  );
  return { head: Number(rows[0]?.head ?? 0), prunedThrough: Number(rows[0]?.pruned_through ?? 0) };
}

/** Events of every domain after `position`, oldest first (a process's one reader). */
export async function readEventsAfter(
  q: Queryable,
  position: number,
  limit: number,
): Promise<JobEventRecord[]> {
  const { rows } = await q.query<Row>(
    `select ${COLUMNS} from job_events
     where position is not null and position > $1 order by job_events.position limit $2`,
    [position, limit],
  );
  return rows.map(toRecord);
}

/** One domain's events after `position`, oldest first (a stream catching up). */
export async function readDomainEventsAfter(
  q: Queryable,
  clientId: string,
  domainId: string,
  position: number,
  limit: number,
): Promise<JobEventRecord[]> {
  const { rows } = await q.query<Row>(
    `select ${COLUMNS} from job_events
     where client_id = $1 and domain_id = $2 and position is not null and position > $3
     order by job_events.position limit $4`,
    [clientId, domainId, position, limit],
  );
  return rows.map(toRecord);
}

/** One change of one job, as its timeline shows it. */
export interface JobStatusChange {
  position: number;
  status: JobStatus;
  /** null when the job was created */
  previous_status: JobStatus | null;
  attempt: number;
  /** the job's `updated_at` as the change left it */
  at: string;
}

/**
 * One job's numbered events, its latest `limit`, oldest first (`job_events_by_job`, migration
 * 000018). Retention deletes the log from its start, so what is kept of a job is always its
 * latest changes: the first of them is its creation exactly when none is gone.
 */
export async function readJobEvents(
  q: Queryable,
  clientId: string,
  domainId: string,
  jobId: string,
  limit: number,
): Promise<JobStatusChange[]> {
  const { rows } = await q.query<{
    position: string;
    status: JobStatus;
    previous_status: JobStatus | null;
    attempt: number;
    updated_at: Date;
  }>(
    `select position::text as position, status, previous_status, attempt, updated_at
     from job_events
     where client_id = $1 and job_id = $2 and position is not null and domain_id = $3
     order by job_events.position desc
     limit $4`,
    [clientId, jobId, domainId, limit],
  );
  return rows.reverse().map((row) => ({
    position: Number(row.position),
    status: row.status,
    previous_status: row.previous_status,
    attempt: row.attempt,
    at: iso(row.updated_at),
  }));
}

/**
 * Deletes up to `batch` numbered events older than `maxAgeS`, from the start of the log, and
 * moves the log's `pruned_through` to the last position deleted; returns how many it deleted.
 * Deleting only from the start keeps "every event after `pruned_through` is still here" true,
 * which is what tells a resuming stream whether it missed any. Positions follow commit order,
 * so the oldest events are the first positions.
 */
export async function deleteOldJobEvents(
  q: Queryable,
  maxAgeS: number,
  batch: number,
): Promise<number> {
  const { rows } = await q.query<{ deleted: string }>(
    `with doomed as (
       select position from job_events
       where position is not null
       order by position
       limit $2
     ), old as (
       -- the run of old rows at the start of the log: up to the first one still young
       select position from doomed
       where position < coalesce(
         (select min(d.position) from doomed d join job_events e on e.position = d.position
          where e.created_at >= now() - make_interval(secs => $1)),
         'infinity'::numeric)
     ), gone as (
       delete from job_events e using old where e.position = old.position
       returning e.position
     ), moved as (
       update job_event_log set pruned_through = greatest(pruned_through, (select max(position) from gone))
       where exists (select 1 from gone)
     )
     select count(*)::text as deleted from gone`,
    [maxAgeS, batch],
  );
  return Number(rows[0]?.deleted ?? 0);
}
