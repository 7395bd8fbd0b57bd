import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { openPgliteDatabase } from '../../src/db/pglite-database.js';
import {
  createBenchDatabase,
  inBatches,
  startPie,
  withClient,
  type ServerChild,
} from '../setup.js';
import type { Metric } from '../types.js';
import {
  drain,
  Latencies,
  LIST_FILTERS,
  lists,
  mixedLoad,
  runJobs,
  type Target,
} from './retained-ops.js';
import { retentionUnderLoad } from './retained-retention.js';
import { seedFinishedJobs, type Sql } from './retained-seed.js';
import { PieClient } from './tenant.js';

/**
 * Does a large backlog of finished jobs slow PIE down? On PostgreSQL and on the embedded
 * database in turn, the same requests are timed with an empty jobs table and with 1,000,000
 * finished jobs retained (200,000 embedded; 100,000 and 20,000 in quick runs): run-job,
 * claim, complete and every list filter, each on a `pie serve` started afresh with the shipped
 * settings and warmed up the same way. Then retention (restarted with PIE_RETENTION_DAYS=1,
 * its first turn 4 s in, then a turn a second apart while a backlog remains) deletes the
 * backlog while a steady mixed load runs, timed per route, after the same load without
 * deletion as a baseline. BENCHMARKS.md describes the method and what is judged.
 */

export interface RetainedOptions {
  quick: boolean;
  /** The admin connection; the scenario makes its own database there. */
  adminUrl: string;
  adminToken: string;
  log: (line: string) => void;
  /** A temporary directory removed by the clean-up. */
  tempDir: (prefix: string) => string;
}

const CLIENT = 'bench-retained';
const DOMAIN = 'bench';
const MODEL = 'bench-retained-model';
const SERVICES = 100;
/** Closed-loop run-job connections, and pull workers claiming batches of MAX_JOBS. */
const CONNECTIONS = 8;
const WORKERS = 4;
const MAX_JOBS = 10;
/** Run-jobs a second in the mixed load under retention. */
const LOAD_RUN_PER_S = 100;

interface Backend {
  name: 'pg' | 'embedded';
  retained: number;
  /** Seed chunk: rows per statement. */
  chunk: number;
  start(settings?: Record<string, string>): Promise<ServerChild>;
  /** Runs `work` on a connection of the bench's own; PIE is stopped meanwhile. */
  direct(
    work: (sql: Sql & { exec: (script: string) => Promise<unknown> }) => Promise<void>,
  ): Promise<void>;
  /** After seeding: what PostgreSQL's autovacuum would do, what PIE does on PGlite. */
  vacuum: string[];
  /** A probe for vacuums of `jobs` in progress, where the bench can see them (PostgreSQL). */
  vacuumProbe?: () => Promise<{ vacuuming: () => Promise<boolean>; close: () => Promise<void> }>;
}

function sizes(quick: boolean) {
  return quick
    ? { pg: 100_000, embedded: 20_000, runs: 2_000, warmup: 500, rounds: 100, baselineS: 5 }
    : { pg: 1_000_000, embedded: 200_000, runs: 10_000, warmup: 1_000, rounds: 300, baselineS: 15 };
}

/** The scenario on PostgreSQL, in a database of its own (`pie_bench_<pid>_retained`). */
export async function retainedOnPostgres(o: RetainedOptions): Promise<Metric[]> {
  const databaseUrl = await createBenchDatabase(o.adminUrl, 'retained');
  const dataDir = o.tempDir('pie-bench-retained-pg-');
  return onBackend(o, {
    name: 'pg',
    retained: sizes(o.quick).pg,
    chunk: 100_000,
    start: (settings = {}) =>
      startPie({ DATABASE_URL: databaseUrl, PIE_DATA_DIR: dataDir, ...settings }),
    direct: (work) =>
      withClient(databaseUrl, (client) =>
        work({ query: (text, values) => client.query(text, values), exec: (s) => client.query(s) }),
      ),
    // A checkpoint too: a real backlog builds up over days, through many checkpoints, so the
    // measurement should not pay for writing out the seed's gigabyte of dirty pages.
    vacuum: ['vacuum analyze jobs', 'checkpoint'],
    vacuumProbe: async () => {
      const client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      const vacuuming = async () => {
        const { rows } = await client.query<{ n: number }>(
          `select count(*)::int as n from pg_stat_progress_vacuum
           where datname = current_database() and relid = 'jobs'::regclass`,
        );
        return (rows[0]?.n ?? 0) > 0;
      };
      return { vacuuming, close: () => client.end() };
    },
  });
}

/**
 * The scenario on the embedded database. PGlite is one process per data folder, so the bench
 * seeds it with `pie serve` stopped, opening the folder's `pgdata` itself.
 */
export async function retainedOnEmbedded(o: RetainedOptions): Promise<Metric[]> {
  const dataDir = o.tempDir('pie-bench-retained-embedded-');
  return onBackend(o, {
    name: 'embedded',
    retained: sizes(o.quick).embedded,
    chunk: 20_000,
    start: (settings = {}) => startPie({ PIE_DATA_DIR: dataDir, ...settings }),
    direct: async (work) => {
      const db = await openPgliteDatabase(path.join(dataDir, 'pgdata'));
      try {
        await work({ query: (text, values) => db.query(text, values), exec: (s) => db.exec(s) });
      } finally {
        await db.close();
      }
    },
    // PIE's own vacuum on PGlite (src/db/vacuum.ts) never analyzes: nothing does there.
    vacuum: ['vacuum jobs'],
  });
}

/** The phases on one backend; if one fails, the output of the `pie serve` it ran on is shown. */
async function onBackend(o: RetainedOptions, backend: Backend): Promise<Metric[]> {
  const started: ServerChild[] = [];
  const start = async (settings?: Record<string, string>) => {
    const pie = await backend.start(settings);
    started.push(pie);
    return pie;
  };
  try {
    return await phases(o, { ...backend, start });
  } catch (error) {
    const pie = started.at(-1);
    if (pie !== undefined) {
      const exited = pie.child.exitCode ?? pie.child.signalCode;
      o.log(
        `retained ${backend.name}: pie serve (${exited === null ? 'running' : `exited: ${exited}`}) said:\n${pie.output().slice(-3000)}`,
      );
    }
    throw error;
  }
}

async function phases(o: RetainedOptions, backend: Backend): Promise<Metric[]> {
  const size = sizes(o.quick);
  const prefix = `retained.${backend.name}`;
  const log = (line: string) => o.log(`retained ${backend.name}: ${line}`);
  const metrics: Metric[] = [{ name: `${prefix}.jobs`, value: backend.retained, unit: 'jobs' }];

  let pie = await backend.start();
  let client = new PieClient(pie.url, o.adminToken);
  const { target, shadowAssignmentId } = await setUpTenant(client);
  const measure = async (state: string) => {
    await measureState(client, target, { ...size, runs: size.warmup, rounds: 10 }, new Latencies());
    const lat = new Latencies();
    await measureState(client, target, size, lat);
    for (const route of lat.routes()) log(`${state}: ${describe(lat, route)}`);
    return lat;
  };
  const empty = await measure('empty');
  await client.close();
  await pie.stop();

  log(`seeding ${backend.retained.toLocaleString('en-US')} finished jobs`);
  const started = performance.now();
  await backend.direct(async (sql) => {
    await seedFinishedJobs(sql, {
      clientId: CLIENT,
      shadowAssignmentId,
      count: backend.retained,
      chunk: backend.chunk,
      log,
    });
    for (const statement of backend.vacuum) await sql.exec(statement);
  });
  log(`seeded and vacuumed in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  pie = await backend.start();
  client = new PieClient(pie.url, o.adminToken);
  const retained = await measure('retained');
  metrics.push(errors(`${prefix}.empty`, empty, log), errors(`${prefix}.retained`, retained, log));
  for (const route of ['run_job', 'claim', 'complete']) {
    const [before, after] = [empty.summary(route), retained.summary(route)];
    metrics.push(
      ...figures(`${prefix}.empty.${route}`, empty, route),
      ...figures(`${prefix}.retained.${route}`, retained, route),
      { name: `${prefix}.${route}.p50_ratio`, value: ratio(after.p50, before.p50), unit: 'x' },
      { name: `${prefix}.${route}.p99_ratio`, value: ratio(after.p99, before.p99), unit: 'x' },
    );
  }
  for (const filter of Object.keys(LIST_FILTERS)) {
    const route = `list_${filter}`;
    metrics.push(
      {
        name: `${prefix}.empty.${route}.p50_ms`,
        value: round(empty.summary(route).p50),
        unit: 'ms',
      },
      ...figures(`${prefix}.retained.${route}`, retained, route),
    );
  }

  // The mixed load with nothing to delete, then while retention deletes the backlog.
  const baseline = new Latencies();
  const baselineEnd = performance.now() + size.baselineS * 1000;
  await mixedLoad(client, target, LOAD_RUN_PER_S, () => performance.now() > baselineEnd, baseline);
  await client.close();
  await pie.stop();

  // Every seeded job finished 2 days ago or more. The first turn comes after the interval, 4 s,
  // while the load warms the new process; a turn that leaves a backlog is followed 1 s later.
  pie = await backend.start({ PIE_RETENTION_DAYS: '1', PIE_RETENTION_INTERVAL_S: '4' });
  client = new PieClient(pie.url, o.adminToken);
  const probe = await backend.vacuumProbe?.();
  const run = await retentionUnderLoad(client, target, {
    seeded: backend.retained,
    boundS: o.quick ? 60 : 300,
    runPerS: LOAD_RUN_PER_S,
    warmupS: 3,
    vacuuming: probe?.vacuuming,
  }).finally(() => probe?.close());
  await client.close();
  await pie.stop();

  const rate = run.seconds > 0 ? run.deleted / run.seconds : 0;
  log(
    `retention deleted ${run.deleted} of ${backend.retained} in ${run.seconds.toFixed(1)} s ` +
      `(${rate.toFixed(0)} jobs/s; all in ${rate > 0 ? (backend.retained / rate).toFixed(0) : '—'} s ` +
      `at that rate); ${run.vacuums.count} vacuums by PIE meanwhile, ` +
      `${run.vacuums.seconds.toFixed(1)} s in all`,
  );
  for (const line of run.timeline) log(`retention ${line}`);
  for (const route of run.lat.routes()) {
    log(`before retention: ${describe(baseline, route)}`);
    log(`during retention: ${describe(run.lat, route)}`);
  }
  metrics.push(
    errors(`${prefix}.retention`, run.lat, log),
    { name: `${prefix}.retention.deleted`, value: run.deleted, unit: 'jobs' },
    { name: `${prefix}.retention.left`, value: backend.retained - run.deleted, unit: 'jobs' },
    { name: `${prefix}.retention.seconds`, value: round(run.seconds), unit: 's' },
    { name: `${prefix}.retention.jobs_per_s`, value: Math.round(rate), unit: 'jobs/s' },
    { name: `${prefix}.retention.vacuums`, value: run.vacuums.count, unit: 'vacuums' },
  );
  for (const route of run.lat.routes()) {
    metrics.push(
      {
        name: `${prefix}.before_retention.${route}.p99_ms`,
        value: round(baseline.summary(route).p99),
        unit: 'ms',
      },
      ...figures(`${prefix}.retention.${route}`, run.lat, route),
    );
    if (probe !== undefined) {
      // The same requests without those that overlapped PIE's own vacuum of `jobs`.
      const outside = run.lat.summary(route, run.duringVacuum);
      metrics.push({
        name: `${prefix}.retention_outside_vacuum.${route}.p99_ms`,
        value: round(outside.p99),
        unit: 'ms',
      });
      log(`during retention, outside vacuums: ${describe(run.lat, route, run.duringVacuum)}`);
    }
  }
  return metrics;
}

/** Warm-up or measurement: run-jobs, then workers drain them, then the list filters. */
async function measureState(
  client: PieClient,
  target: Target,
  size: { runs: number; rounds: number },
  lat: Latencies,
): Promise<void> {
  const created = await runJobs(client, target, size.runs, CONNECTIONS, lat);
  await drain(client, target, created, { workers: WORKERS, maxJobs: MAX_JOBS }, lat);
  await lists(client, target, size.rounds, lat);
}

/** A client, a domain, a pull-worker model version, 100 services, `default` and `shadow`. */
async function setUpTenant(pie: PieClient) {
  const domain = `/v2/clients/${CLIENT}/domains/${DOMAIN}`;
  await pie.expect([200, 201], 'PUT', `/v2/clients/${CLIENT}`, {});
  await pie.expect([200, 201], 'PUT', domain, {});
  await pie.expect([200, 201], 'PUT', `/v2/models/${MODEL}`, {});
  await pie.expect([200, 201], 'PUT', `/v2/models/${MODEL}/versions/1`, {
    features: [],
    handler: { type: 'worker' },
    job_types: ['inference', 'training', 'evaluation'],
  });
  const services = Array.from({ length: SERVICES }, (_, i) => `service-${i + 1}`);
  await inBatches(services, 25, (id) =>
    pie.expect([200, 201], 'PUT', `${domain}/services/${id}`, {}),
  );
  const assign = (key: string) =>
    pie.expect<{ assignment_id: string }>([200, 201], 'PUT', `${domain}/assignments/${key}`, {
      model_id: MODEL,
      model_version: '1',
    });
  await assign('default');
  const shadow = await assign('shadow');
  const target: Target = {
    runPaths: services.map((id) => `${domain}/service/${id}/assignments/default/jobs`),
    claimPath: `/v2/models/${MODEL}/versions/1/jobs/claim`,
    listPath: `${domain}/jobs`,
  };
  return { target, shadowAssignmentId: shadow.assignment_id };
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;
const ratio = (after: number, before: number) =>
  before === 0 ? 0 : Math.round((after / before) * 100) / 100;

/** Requests that got no answer (connection closed or reset), logged with the first reason. */
function errors(name: string, lat: Latencies, log: (line: string) => void): Metric {
  const all = [...lat.errors.entries()].flatMap(([route, list]) =>
    list.map((e) => `${route}: ${e}`),
  );
  if (all.length > 0) log(`${name}: ${all.length} requests got no answer, first ${all[0]}`);
  return { name: `${name}.request_errors`, value: all.length, unit: 'requests' };
}

function figures(name: string, lat: Latencies, route: string): Metric[] {
  const { p50, p99 } = lat.summary(route);
  return [
    { name: `${name}.p50_ms`, value: round(p50), unit: 'ms' },
    { name: `${name}.p99_ms`, value: round(p99), unit: 'ms' },
  ];
}

function describe(
  lat: Latencies,
  route: string,
  leaveOut?: (from: number, to: number) => boolean,
): string {
  const { count, p50, p99 } = lat.summary(route, leaveOut);
  return `${route} p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms over ${count}`;
}
