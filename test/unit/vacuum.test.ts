import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import type { Queryable } from '../../src/db/database.js';
import {
  ANALYZE_STATISTICS_TARGET,
  analyzeTables,
  CHURNING_TABLES,
  needsOwnVacuum,
  TableStatistics,
  vacuumChurningTables,
} from '../../src/db/vacuum.js';
import { insertJobs, seedJobTarget } from '../helpers/job-rows.js';
import { startVacuuming } from '../../src/services/vacuum.service.js';
import { Metrics } from '../../src/observability/metrics.js';
import { testBackends } from '../helpers/backends.js';
import { pollUntil, sleep } from '../helpers/wait.js';

/** A logger that keeps what it was told. */
function recordingLog() {
  const lines: { level: string; message: string }[] = [];
  const at =
    (level: string) =>
    (...args: unknown[]) =>
      lines.push({ level, message: String(args.find((a) => typeof a === 'string')) });
  return { lines, log: { debug: at('debug'), warn: at('warn'), error: at('error') } };
}

async function vacuumCount(metrics: Metrics): Promise<number> {
  const metric = await metrics.vacuumDuration.get();
  return metric.values.find((v) => v.metricName === 'pie_vacuum_seconds_count')!.value;
}

/**
 * A database whose exec takes `ms` and records what it ran and how many ran at once. Its
 * catalog lists no tables, so there is never anything to analyze.
 */
function slowDatabase(ms: number, fail: (call: number) => boolean = () => false) {
  const state = { scripts: [] as string[], running: 0, mostAtOnce: 0 };
  const db: Queryable = {
    query: <Row>() => Promise.resolve({ rows: [] as Row[], rowCount: 0 }),
    async exec(script) {
      state.scripts.push(script);
      state.running += 1;
      state.mostAtOnce = Math.max(state.mostAtOnce, state.running);
      try {
        await sleep(ms);
        if (fail(state.scripts.length)) throw new Error('disk full');
      } finally {
        state.running -= 1;
      }
    },
  };
  return { db, state };
}

describe('vacuuming', () => {
  for (const backend of testBackends()) {
    it(`vacuums the tables that churn, on schedule [${backend.name}]`, async () => {
      const { db, dispose } = await backend.open();
      const metrics = new Metrics();
      const { log, lines } = recordingLog();
      try {
        const autovacuum = async () =>
          (await db.query<{ autovacuum: string }>('show autovacuum')).rows[0]!.autovacuum;
        assert.equal(
          await needsOwnVacuum(db),
          backend.name === 'pglite' || (await autovacuum()) === 'off',
          'PGlite always; PostgreSQL when its autovacuum is off',
        );
        const lastVacuums = async () =>
          (
            await db.query<{ relname: string; last_vacuum: Date | null }>(
              `select relname, last_vacuum from pg_stat_user_tables
               where relname = any($1::text[]) order by relname`,
              [CHURNING_TABLES],
            )
          ).rows;
        assert.deepEqual(
          (await lastVacuums()).map((row) => row.last_vacuum),
          CHURNING_TABLES.map(() => null),
          'not vacuumed before',
        );
        // The job event log churns most of all: two versions a job change, deleted after an hour.
        for (const table of ['jobs', 'job_events', 'job_event_log']) {
          assert.ok((CHURNING_TABLES as readonly string[]).includes(table), table);
        }
        const vacuum = startVacuuming(db, 20, log, metrics);
        await pollUntil(async () => (await vacuumCount(metrics)) >= 2, 5000, 10);
        await vacuum.stop();

        assert.ok((await vacuumCount(metrics)) >= 2, 'ran again after the first');
        const rows = await lastVacuums();
        assert.deepEqual(
          rows.map((row) => row.relname),
          [...CHURNING_TABLES].sort(),
        );
        for (const row of rows) assert.ok(row.last_vacuum instanceof Date, `${row.relname}`);
        assert.deepEqual(
          lines.filter((line) => line.level !== 'debug'),
          [],
          'no warnings or errors',
        );
      } finally {
        await dispose();
      }
    });
  }

  it('runs one vacuum at a time however short the interval, and stop() waits for it', async () => {
    const { db, state } = slowDatabase(30);
    const vacuum = startVacuuming(db, 1, recordingLog().log, new Metrics());
    await sleep(200);
    await vacuum.stop();
    const ran = state.scripts.length;
    assert.ok(ran >= 2, `ran ${ran} times`);
    assert.equal(state.mostAtOnce, 1);
    assert.equal(state.running, 0, 'stop() resolved with a vacuum still running');
    await sleep(50);
    assert.equal(state.scripts.length, ran, 'nothing ran after stop()');
  });

  it('logs a failed vacuum and tries again on the next turn', async () => {
    const { db, state } = slowDatabase(1, (call) => call === 1);
    const metrics = new Metrics();
    const { log, lines } = recordingLog();
    const vacuum = startVacuuming(db, 5, log, metrics);
    await pollUntil(() => state.scripts.length >= 3, 5000, 5);
    await vacuum.stop();
    assert.deepEqual(
      lines.filter((line) => line.level === 'error').map((line) => line.message),
      ['vacuum failed; retrying on the next turn'],
    );
    // The failed turn stopped at its first table; each turn after it vacuumed every table.
    assert.equal(
      await vacuumCount(metrics),
      (state.scripts.length - 1) / CHURNING_TABLES.length,
      'successes are timed',
    );
  });

  for (const backend of testBackends()) {
    it(`analyzes tables never analyzed, doubled or halved, or not for an hour [${backend.name}]`, async () => {
      const { db, dispose } = await backend.open();
      try {
        const statistics = new TableStatistics();
        const hasStatistics = async () =>
          (
            await db.query<{ n: number }>(
              `select count(*)::int as n from pg_stats where tablename = 'jobs'`,
            )
          ).rows[0]!.n > 0;
        const now = Date.now();
        assert.deepEqual(await statistics.refresh(db, now), [...CHURNING_TABLES]);
        assert.deepEqual(await statistics.refresh(db, now), [], 'nothing changed');
        assert.deepEqual(
          await new TableStatistics().refresh(db, now),
          [],
          'a process started later takes analyzed tables as they are',
        );

        await seedJobTarget(db, 'stats-client');
        const insert = (from: number, count: number) =>
          insertJobs(
            db,
            'stats-client',
            Array.from({ length: count }, (_, i) => ({
              tag: `j${from + i}`,
              status: 'success' as const,
            })),
          );
        await insert(0, 4000);
        await vacuumChurningTables(db); // refreshes the size estimate, as PIE's vacuum turn does
        assert.deepEqual(await statistics.refresh(db, now), [], '4,000 rows are too few to matter');
        await insert(4000, 2000);
        assert.equal(await hasStatistics(), false, 'an empty table has no value statistics');
        await vacuumChurningTables(db);
        // Each job created wrote its event too: the event log grew by as many rows.
        assert.deepEqual(
          await statistics.refresh(db, now),
          ['jobs', 'job_events'],
          '6,000 rows more than 0',
        );
        assert.ok(await hasStatistics(), 'the planner now knows what jobs holds');
        const { rows: sampled } = await db.query<{ attname: string }>(
          `select attname from pg_stats where tablename = 'jobs' order by attname`,
        );
        const columns = sampled.map((row) => row.attname);
        assert.ok(columns.includes('client_id') && columns.includes('status'), 'keys sampled');
        assert.ok(!columns.includes('input') && !columns.includes('output'), 'payloads not');
        // Sampled at PIE's own target, also where a column has none of its own (the event
        // log's): 6,000 distinct job ids make a histogram of 11 bounds at a target of 10 (101 at
        // PostgreSQL's default), and the setting did not outlive the ANALYZE.
        const { rows: histogram } = await db.query<{ bounds: number; target: string }>(
          `select cardinality(histogram_bounds::text::text[]) as bounds,
             current_setting('default_statistics_target') as target
           from pg_stats where tablename = 'job_events' and attname = 'job_id'`,
        );
        assert.deepEqual(histogram, [{ bounds: ANALYZE_STATISTICS_TARGET + 1, target: '100' }]);
        // A failed ANALYZE leaves the connection as it was (PGlite's only one included).
        await assert.rejects(analyzeTables(db, ['no_such_table']), /no_such_table/);
        const { rows: after } = await db.query<{ target: string }>(
          `select current_setting('default_statistics_target') as target`,
        );
        assert.deepEqual(after, [{ target: '100' }]);
        assert.deepEqual(await statistics.refresh(db, now + 60_000), []);
        // Grown by half: the statistics still hold (the planner scales them to the size).
        await insert(6000, 5000);
        await vacuumChurningTables(db);
        assert.deepEqual(await statistics.refresh(db, now + 60_000), [], '11,000 of 6,000 rows');
        await insert(11000, 1500);
        await vacuumChurningTables(db);
        assert.deepEqual(
          await statistics.refresh(db, now + 60_000),
          ['jobs', 'job_events'],
          '12,500 rows: more than twice 6,000',
        );
        // Halved: most of the rows deleted (retention), which the statistics must follow too.
        await db.query(
          `delete from jobs where client_id = 'stats-client' and input->>'tag' > 'j3'`,
        );
        await vacuumChurningTables(db);
        assert.deepEqual(await statistics.refresh(db, now + 60_000), ['jobs'], 'jobs shrank');
        assert.deepEqual(
          await statistics.refresh(db, now + 60_000 + 60 * 60 * 1000),
          [...CHURNING_TABLES],
          'an hour on, all again',
        );
      } finally {
        await dispose();
      }
    });
  }

  it('runs every 10 s by default; PIE_VACUUM_S sets it, 0 turns it off', () => {
    assert.equal(loadConfig({}).vacuumS, 10);
    assert.equal(loadConfig({ PIE_VACUUM_S: '5' }).vacuumS, 5);
    assert.equal(loadConfig({ PIE_VACUUM_S: '0' }).vacuumS, 0);
    assert.throws(() => loadConfig({ PIE_VACUUM_S: '-1' }), /PIE_VACUUM_S/);
  });
});
