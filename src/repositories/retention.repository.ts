import type { Queryable } from '../db/database.js';
import { finished } from './indexed-job-sets.js';

/**
 * Retention's deletes, each one short statement over at most `batch` rows, oldest first.
 *
 * Rows are picked `for update skip locked`: a row another transaction holds (a late completion
 * replaying on a finished job, another deleter) is left for a later batch instead of waited
 * for, so a batch never queues behind a request, nor a request behind more than one batch.
 * The rows picked are then deleted by their physical address (`ctid`, stable while the
 * statement holds their locks), which the planner turns into a direct fetch of each: naming them
 * by key instead (`(client_id, job_id) in (...)`) was planned as a hash join over a sequential
 * scan of the whole table.
 *
 * Ages are measured on the database's clock (`now()`), the clock that wrote `finished_at` and
 * `created_at`, so processes whose clocks disagree still agree on what is old.
 */

/**
 * Deletes up to `batch` finished jobs (success, failure, cancelled) that finished more than
 * `maxAgeS` seconds ago, and returns how many it deleted. Open jobs are never candidates: a final
 * status never changes, and the status test is part of the statement. The test is the partial
 * index `jobs_finished`'s own condition, which the planner uses only when it can see the
 * query's condition implies the index's.
 *
 * No foreign key references a job. `subscriptions.created_by_job_id` and a triggered job's
 * `trigger.job_id` name their job as plain text, and keep naming it once it is deleted.
 */
export function deleteOldFinishedJobs(q: Queryable, maxAgeS: number, batch: number) {
  return deleteOldest(q, {
    table: 'jobs',
    where: finished(),
    age: 'finished_at',
    maxAgeS,
    batch,
    cascade: [
      // The completions that joined a debounced job go with it.
      `delete from debounce_joins d using gone
       where d.client_id = gone.client_id and d.job_id = gone.job_id`,
      // The jobs leave the counts of their domain and status (migration 000017), in this same
      // statement, so the counts never include a job that is gone. Every write to job_counts
      // adds a signed amount, so it does not matter whether the sequencer has yet counted these
      // jobs' last changes (their events may still wait for its turn): the sum comes out the
      // same in either order. An upsert in key order, as the sequencer's, rather than an
      // update: the two never lock the same rows in opposite orders (a deadlock), and a count
      // the sequencer has not written yet is started below zero and brought back by it.
      `insert into job_counts as t (client_id, domain_id, status, count)
       select client_id, domain_id, status, -count(*) from gone
       group by client_id, domain_id, status
       order by client_id, domain_id, status
       on conflict (client_id, domain_id, status) do update set count = t.count + excluded.count`,
    ],
    returning: 'client_id, job_id, domain_id, status',
  });
}

/**
 * Deletes up to `batch` minutes of job activity (migration 000017) older than `maxAgeS`, and
 * returns how many rows it deleted. The stats routes read the last hour; older minutes only
 * take space.
 */
export function deleteOldJobActivity(q: Queryable, maxAgeS: number, batch: number) {
  return deleteOldest(q, { table: 'job_activity', age: 'minute', maxAgeS, batch });
}

/**
 * Deletes up to `batch` batches that finished more than `maxAgeS` seconds ago, with their
 * counts, and returns how many it deleted: a batch goes when its jobs do (the retention of
 * jobs), and an open batch never.
 */
export async function deleteOldFinishedBatches(
  q: Queryable,
  maxAgeS: number,
  batch: number,
): Promise<number> {
  const { rows } = await q.query<{ deleted: number }>(
    `with gone as (
       delete from batches
       where ctid = any(array(
         select ctid from batches
         where finished_at < now() - make_interval(secs => $1)
         order by finished_at
         limit $2
         for update skip locked
       ))
       returning client_id, batch_id
     ), counts as (
       delete from batch_counts c using gone
       where c.client_id = gone.client_id and c.batch_id = gone.batch_id
     )
     select count(*)::int as deleted from gone`,
    [maxAgeS, batch],
  );
  return rows[0]?.deleted ?? 0;
}

/**
 * Deletes up to `batch` idempotency records created more than `maxAgeS` seconds ago (24 hours
 * in `pie serve`: past it a record answers nothing, since `claimIdempotencyKey` takes an expired
 * key over), and returns how many it deleted.
 */
export function deleteOldIdempotencyRecords(q: Queryable, maxAgeS: number, batch: number) {
  return deleteOldest(q, { table: 'idempotency_keys', age: 'created_at', maxAgeS, batch });
}

/**
 * Deletes up to `batch` rows of `table` whose `age` column is older than `maxAgeS` seconds,
 * and with `cascade` what depends on them (statements reading the deleted rows, `gone`, with
 * the columns `returning` names).
 */
async function deleteOldest(
  q: Queryable,
  old: {
    table: string;
    where?: string;
    age: string;
    maxAgeS: number;
    batch: number;
    cascade?: readonly string[];
    returning?: string;
  },
): Promise<number> {
  const cascaded = (old.cascade ?? []).map((statement, i) => `, cascaded_${i} as (${statement})`);
  const { rows } = await q.query<{ deleted: number }>(
    `with gone as (
       delete from ${old.table}
       where ctid = any(array(
         select ctid from ${old.table}
         where ${old.where ?? 'true'} and ${old.age} < now() - make_interval(secs => $1)
         order by ${old.age}
         limit $2
         for update skip locked
       ))
       returning ${old.returning ?? '1'}
     )${cascaded.join('')}
     select count(*)::int as deleted from gone`,
    [old.maxAgeS, old.batch],
  );
  return rows[0]?.deleted ?? 0;
}

// Any constant works; it only has to be the same in every PIE process (and differ from the
// migrations' lock, db/migrate.ts).
const RETENTION_LOCK_KEY = 7_410_993_002;

/**
 * Takes the fleet's retention lock for the rest of the transaction `tx`, if no other session
 * holds it, and says whether it did. It is released by the commit or rollback, so a process
 * that dies mid-batch cannot keep it.
 */
export async function tryRetentionLock(tx: Queryable): Promise<boolean> {
  const { rows } = await tx.query<{ locked: boolean }>(
    'select pg_try_advisory_xact_lock($1) as locked',
    [RETENTION_LOCK_KEY],
  );
  return rows[0]?.locked === true;
}
