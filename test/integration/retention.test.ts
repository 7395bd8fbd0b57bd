import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import type { Database, Queryable } from '../../src/db/database.js';
import { openPostgresDatabase } from '../../src/db/pg-database.js';
import { Metrics } from '../../src/observability/metrics.js';
import { tryRetentionLock } from '../../src/repositories/retention.repository.js';
import { startServer } from '../../src/server.js';
import { RetentionService, type RetentionOptions } from '../../src/services/retention.service.js';
import { testBackends, type TestDatabase } from '../helpers/backends.js';
import { insertJobs, jobTags, seedJobTarget, type JobRow } from '../helpers/job-rows.js';
import { scrapeMetrics } from '../helpers/scrape-metrics.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Retention: finished jobs past their age and idempotency records past 24 hours are deleted in
 * small batches, by one process at a time; open jobs and newer rows stay. Ages here are
 * seconds, given to the service as its cutoff, rather than PIE_RETENTION_DAYS' days.
 */

const DAY_S = 86_400;
const quietLog = { debug: () => undefined, error: () => undefined };

function retention(
  db: Database,
  options: Partial<RetentionOptions>,
  metrics = new Metrics(),
): RetentionService {
  return new RetentionService(
    db,
    { intervalMs: 60_000, jobsMaxAgeS: 60, budgetMs: 10_000, ...options },
    quietLog,
    metrics,
  );
}

async function deletedCount(metrics: Metrics, kind: 'jobs' | 'idempotency'): Promise<number> {
  const metric = await metrics.retentionDeleted.get();
  return metric.values.find((value) => value.labels['kind'] === kind)?.value ?? 0;
}

async function insertIdempotencyRecord(
  q: Queryable,
  key: string,
  ageS: number,
  statusCode: number | null,
): Promise<void> {
  await q.query(
    `insert into idempotency_keys (client_id, caller, key, request_hash, status_code, created_at)
     values ('c1', 'test', $1, 'hash', $2, now() - make_interval(secs => $3))`,
    [key, statusCode, ageS],
  );
}

async function idempotencyKeys(q: Queryable): Promise<string[]> {
  const { rows } = await q.query<{ key: string }>('select key from idempotency_keys');
  return rows.map((row) => row.key).sort();
}

/** `count` finished jobs tagged `${prefix}-N`, finished `finishedAgoS` ago. */
function finishedJobs(prefix: string, count: number, finishedAgoS: number): JobRow[] {
  return Array.from({ length: count }, (_, i) => ({
    tag: `${prefix}-${i}`,
    status: 'success' as const,
    createdAgoS: finishedAgoS + 10,
    finishedAgoS,
  }));
}

/** The span in which a batch held the retention lock and deleted, in the database's ticks. */
interface LockedBatch {
  from: number;
  to: number;
  deleted: number;
}

/**
 * `db` as a process would use it, noting for every transaction that took the retention lock
 * and then deleted a tick of a database sequence when the lock was granted and one when the
 * delete ended. Sequence values are handed out in the order they are asked for, across
 * sessions and outside transactions, and both ticks are taken before the commit that releases
 * the lock: so two batches ran under the lock one after the other exactly when their spans do
 * not overlap. (Clock readings would not do: PGlite's clock has millisecond resolution.)
 */
function recordingLockedBatches(db: Database, batches: LockedBatch[]): Database {
  const tick = async (tx: Queryable) =>
    (await tx.query<{ tick: number }>(`select nextval('retention_test_ticks') as tick`)).rows[0]!
      .tick;
  return {
    backend: db.backend,
    query: (text, values) => db.query(text, values),
    exec: (script) => db.exec(script),
    reads: db.reads,
    listen: (channel, onNotify) => db.listen(channel, onNotify),
    close: () => db.close(),
    transaction: (work) =>
      db.transaction(async (tx) => {
        let lockedAt: number | undefined;
        return work({
          exec: (script) => tx.exec(script),
          async query<Row>(text: string, values?: readonly unknown[]) {
            const result = await tx.query<Row>(text, values);
            if (text.includes('pg_try_advisory_xact_lock')) {
              const locked = (result.rows[0] as { locked?: boolean } | undefined)?.locked;
              if (locked === true) lockedAt = await tick(tx);
            } else if (/\bdelete from\b/i.test(text) && lockedAt !== undefined) {
              // Each delete answers how many rows it deleted.
              const deleted = (result.rows[0] as { deleted: number } | undefined)?.deleted ?? 0;
              batches.push({ from: lockedAt, to: await tick(tx), deleted });
            }
            return result;
          },
        });
      }),
  };
}

/** Empties what a test of retention writes, so each starts from nothing. */
async function emptyTables(db: Database): Promise<void> {
  await db.exec(
    'truncate jobs, batch_counts, batches, debounce_joins, schedules, idempotency_keys, subscriptions, assignments, services, domains, clients',
  );
}

for (const backend of testBackends()) {
  describe(`retention [${backend.name}]`, () => {
    // One database for the file's tests (opening one costs seconds on PGlite); each test
    // empties it first, since retention deletes whatever is old, whoever wrote it.
    let opened: TestDatabase | undefined;
    const fresh = async () => {
      opened ??= await backend.open();
      await emptyTables(opened.db);
      return opened;
    };
    after(async () => {
      await opened?.dispose();
    });

    it('deletes finished jobs past the cutoff in batches, and no open or recent job', async () => {
      const { db } = await fresh();
      await seedJobTarget(db, 'c1');
      const longAgo = 400 * DAY_S;
      await insertJobs(db, 'c1', [
        // Open jobs of any age stay.
        { tag: 'queued-old', status: 'queued', createdAgoS: longAgo },
        { tag: 'dispatched-old', status: 'dispatched', createdAgoS: longAgo },
        { tag: 'running-old', status: 'running', createdAgoS: longAgo },
        // Finished within the cutoff stay, whatever their creation time.
        { tag: 'success-recent', status: 'success', createdAgoS: longAgo, finishedAgoS: 30 },
        { tag: 'failure-recent', status: 'failure', createdAgoS: longAgo, finishedAgoS: 30 },
        { tag: 'cancelled-recent', status: 'cancelled', createdAgoS: longAgo },
        // Finished past it go, each final status alike.
        { tag: 'failure-old', status: 'failure', createdAgoS: 200, finishedAgoS: 120 },
        { tag: 'cancelled-old', status: 'cancelled', createdAgoS: 200, finishedAgoS: 120 },
        ...finishedJobs('success-old', 8, 120),
      ]);
      // A subscription names the job whose `subscribe: true` made it; that job may still go.
      const { rows: creator } = await db.query<{ job_id: string }>(
        `insert into subscriptions (client_id, domain_id, source_model_id, action_assignment_key,
                                    action_job_type, created_by_job_id)
         select 'c1', 'd1', 'rows-model', 'default', 'training', job_id
         from jobs where input->>'tag' = 'success-old-0'
         returning created_by_job_id as job_id`,
      );
      // Batches go by their finish time too, with their counts; an open one never.
      await db.exec(
        `insert into batches (client_id, batch_id, domain_id, kind, assignment_key, total,
                              created_at, finished_at)
         values ('c1', '00000000-0000-4000-8000-00000000000a', 'd1', 'bulk', 'default', 1,
                 now() - interval '400 days', now() - interval '120 seconds'),
                ('c1', '00000000-0000-4000-8000-00000000000b', 'd1', 'bulk', 'default', 1,
                 now() - interval '400 days', null),
                ('c1', '00000000-0000-4000-8000-00000000000c', 'd1', 'bulk', 'default', 1,
                 now() - interval '400 days', now() - interval '30 seconds');
         insert into batch_counts (client_id, batch_id, shard, success)
         values ('c1', '00000000-0000-4000-8000-00000000000a', 0, 1),
                ('c1', '00000000-0000-4000-8000-00000000000c', 0, 1)`,
      );
      const metrics = new Metrics();
      const service = retention(db, { jobsMaxAgeS: 60, batch: 3 }, metrics);

      const turn = await service.runOnce();

      const { rows: batchesLeft } = await db.query<{ batch_id: string; shards: number }>(
        `select b.batch_id,
           (select count(*)::int from batch_counts c where c.batch_id = b.batch_id) as shards
         from batches b order by b.batch_id`,
      );
      assert.deepEqual(batchesLeft, [
        { batch_id: '00000000-0000-4000-8000-00000000000b', shards: 0 },
        { batch_id: '00000000-0000-4000-8000-00000000000c', shards: 1 },
      ]);
      const { rows: orphans } = await db.query<{ n: number }>(
        `select count(*)::int as n from batch_counts
         where batch_id = '00000000-0000-4000-8000-00000000000a'`,
      );
      assert.equal(orphans[0]!.n, 0, "the deleted batch's counts went with it");
      assert.deepEqual(turn, {
        deleted: { jobs: 10, batches: 1, idempotency: 0, events: 0, activity: 0 },
        busy: false,
        backlog: false,
      });
      assert.deepEqual(await jobTags(db), [
        'cancelled-recent',
        'dispatched-old',
        'failure-recent',
        'queued-old',
        'running-old',
        'success-recent',
      ]);
      assert.equal(await deletedCount(metrics, 'jobs'), 10);
      const { rows } = await db.query<{ created_by_job_id: string | null }>(
        'select created_by_job_id from subscriptions',
      );
      assert.equal(rows.length, 1, 'the subscription stays');
      assert.equal(rows[0]!.created_by_job_id, creator[0]!.job_id, 'naming its deleted job');
      assert.deepEqual((await service.runOnce()).deleted, {
        jobs: 0,
        batches: 0,
        idempotency: 0,
        events: 0,
        activity: 0,
      });
    });

    it('cannot be handed an open job that carries a finish time', async () => {
      // Retention deletes by finish time: the database refuses the one row that would make an
      // open job look finished (the check of migration 000010), and a final one without it.
      const { db } = await fresh();
      await seedJobTarget(db, 'c1');
      for (const odd of [
        {
          tag: 'queued-odd',
          status: 'queued' as const,
          createdAgoS: 400 * DAY_S,
          finishedAgoS: 400 * DAY_S,
        },
        { tag: 'success-odd', status: 'success' as const, finishedAgoS: null },
      ]) {
        await assert.rejects(insertJobs(db, 'c1', [odd]), { code: '23514' });
      }
      assert.deepEqual(await jobTags(db), []);
    });

    it('ends a turn at its budget, and follows it at once while a backlog is left', async () => {
      const { db } = await fresh();
      await seedJobTarget(db, 'c1');
      await insertJobs(db, 'c1', finishedJobs('old', 15, 120));
      // A budget of 0: one batch of each kind a turn; the next turn then follows after a
      // pause as long as the budget (none), rather than after the interval (1 s).
      const service = retention(db, { intervalMs: 1000, batch: 3, budgetMs: 0 });

      const first = await service.runOnce();
      assert.deepEqual(first, {
        deleted: { jobs: 3, batches: 0, idempotency: 0, events: 0, activity: 0 },
        busy: false,
        backlog: true,
      });
      assert.equal((await jobTags(db)).length, 12);

      // 12 left at 3 a turn: five more turns (the last finds none), 5 s at the interval.
      const started = Date.now();
      service.start();
      try {
        await waitFor('the backlog deleted', async () => (await jobTags(db)).length === 0, 5000);
      } finally {
        await service.stop();
      }
      const elapsedMs = Date.now() - started;
      assert.ok(elapsedMs < 3000, `the backlog took ${elapsedMs} ms: turns waited the interval`);
    });

    it('deletes idempotency records past 24 hours, also when jobs are kept forever', async () => {
      const { db } = await fresh();
      await seedJobTarget(db, 'c1');
      await insertJobs(db, 'c1', finishedJobs('ancient', 1, 400 * DAY_S));
      await insertIdempotencyRecord(db, 'answered-25h', 25 * 3600, 202);
      await insertIdempotencyRecord(db, 'in-flight-25h', 25 * 3600, null);
      await insertIdempotencyRecord(db, 'answered-23h', 23 * 3600, 202);
      await insertIdempotencyRecord(db, 'answered-now', 0, 202);
      const metrics = new Metrics();
      // PIE_RETENTION_DAYS=0: no job cutoff; the records' 24 hours is the default.
      const service = retention(db, { jobsMaxAgeS: undefined }, metrics);

      const turn = await service.runOnce();

      assert.deepEqual(turn.deleted, {
        jobs: 0,
        batches: 0,
        idempotency: 2,
        events: 0,
        activity: 0,
      });
      assert.deepEqual(await idempotencyKeys(db), ['answered-23h', 'answered-now']);
      assert.deepEqual(await jobTags(db), ['ancient-0'], 'jobs are kept');
      assert.equal(await deletedCount(metrics, 'idempotency'), 2);
    });

    it('lets two processes delete only one at a time', async () => {
      const { db, url } = await fresh();
      // On PostgreSQL each "process" has its own pool, as separate `pie serve`s would; the
      // embedded database belongs to one process, so there both share it.
      const other = url === undefined ? db : await openPostgresDatabase(url);
      try {
        await seedJobTarget(db, 'c1');
        await insertJobs(db, 'c1', finishedJobs('old', 400, 120));
        for (let i = 0; i < 200; i += 1) await insertIdempotencyRecord(db, `k${i}`, 2 * DAY_S, 202);
        await db.exec('create sequence if not exists retention_test_ticks');
        const batches: LockedBatch[] = [];
        const services = [db, other].map((each) =>
          retention(recordingLockedBatches(each, batches), { batch: 10 }),
        );

        // Each runs turns until it finds nothing to delete (a busy turn tries again).
        await Promise.all(
          services.map(async (service) => {
            for (;;) {
              const turn = await service.runOnce();
              if (!turn.busy && turn.deleted.jobs + turn.deleted.idempotency === 0) return;
            }
          }),
        );

        assert.deepEqual(await jobTags(db), []);
        assert.deepEqual(await idempotencyKeys(db), []);
        const deleted = batches.reduce((sum, batch) => sum + batch.deleted, 0);
        assert.equal(deleted, 600, 'every row deleted once');
        const ordered = [...batches].sort((a, b) => a.from - b.from);
        for (let i = 1; i < ordered.length; i += 1) {
          assert.ok(
            ordered[i - 1]!.to < ordered[i]!.from,
            `batches overlapped: ${JSON.stringify([ordered[i - 1], ordered[i]])}`,
          );
        }
      } finally {
        if (other !== db) await other.close();
      }
    });

    // Only a second session can hold the lock against this one, and the embedded database is
    // one session (and one process, by its pie.lock).
    if (backend.name === 'postgres') {
      it('deletes nothing while another process holds the retention lock', async () => {
        const { db, url } = await fresh();
        const other = await openPostgresDatabase(url!);
        try {
          await seedJobTarget(db, 'c1');
          await insertJobs(db, 'c1', finishedJobs('old', 5, 120));
          await insertIdempotencyRecord(db, 'old', 2 * DAY_S, 202);
          const service = retention(db, {});

          const blocked = await other.transaction(async (tx) => {
            assert.equal(await tryRetentionLock(tx), true, 'the other process takes the lock');
            return service.runOnce();
          });

          assert.deepEqual(blocked, {
            deleted: { jobs: 0, batches: 0, idempotency: 0, events: 0, activity: 0 },
            busy: true,
            backlog: false,
          });
          assert.equal((await jobTags(db)).length, 5);
          assert.deepEqual(await idempotencyKeys(db), ['old']);
          const after = await service.runOnce();
          assert.deepEqual(
            after.deleted,
            { jobs: 5, batches: 0, idempotency: 1, events: 0, activity: 0 },
            'once it is released',
          );
        } finally {
          await other.close();
        }
      });
    }

    it('runs in `pie serve`, deleting by PIE_RETENTION_DAYS and counting it in /metrics', async () => {
      // The embedded server opens its own database in a data folder; on PostgreSQL, a fresh one.
      const database = backend.name === 'postgres' ? await backend.open() : undefined;
      const url = database?.url;
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pie-retention-'));
      const server = await startServer(
        loadConfig({
          PIE_DATA_DIR: dataDir,
          PIE_PORT: '0',
          PIE_LOG_LEVEL: 'warn',
          PIE_DISPATCH: 'off',
          PIE_RETENTION_DAYS: '1',
          PIE_RETENTION_INTERVAL_S: '1',
          ...(url !== undefined && { DATABASE_URL: url }),
        }),
      );
      try {
        await seedJobTarget(server.db, 'c1');
        await insertJobs(server.db, 'c1', [
          ...finishedJobs('two-days', 2, 2 * DAY_S),
          ...finishedJobs('half-day', 1, DAY_S / 2),
        ]);
        await insertIdempotencyRecord(server.db, 'old', 2 * DAY_S, 202);

        await waitFor(
          'retention to run',
          async () => (await jobTags(server.db)).length === 1,
          5000,
          100,
        );
        assert.deepEqual(await jobTags(server.db), ['half-day-0']);
        assert.deepEqual(await idempotencyKeys(server.db), []);
        const metrics = await scrapeMetrics(server.url);
        assert.equal(metrics.get('pie_retention_deleted_total{kind="jobs"}'), 2);
        assert.equal(metrics.get('pie_retention_deleted_total{kind="idempotency"}'), 1);
      } finally {
        await server.close();
        await database?.dispose();
        fs.rmSync(dataDir, { recursive: true, force: true });
      }
    });
  });
}

describe('retention settings', () => {
  it('keeps finished jobs 30 days by default; 0 keeps them all; runs every 60 s', () => {
    assert.equal(loadConfig({}).retentionDays, 30);
    assert.equal(loadConfig({ PIE_RETENTION_DAYS: '0' }).retentionDays, 0);
    assert.equal(loadConfig({ PIE_RETENTION_DAYS: '7' }).retentionDays, 7);
    assert.throws(() => loadConfig({ PIE_RETENTION_DAYS: '-1' }), /PIE_RETENTION_DAYS/);
    assert.throws(() => loadConfig({ PIE_RETENTION_DAYS: '1.5' }), /PIE_RETENTION_DAYS/);
    assert.equal(loadConfig({}).retentionIntervalS, 60);
    assert.equal(loadConfig({ PIE_RETENTION_INTERVAL_S: '1' }).retentionIntervalS, 1);
    assert.throws(() => loadConfig({ PIE_RETENTION_INTERVAL_S: '0' }), /PIE_RETENTION_INTERVAL_S/);
  });
});
