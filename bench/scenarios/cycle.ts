import { performance } from 'node:perf_hooks';
import { median, medianBy } from '../median.js';
import { createBenchDatabase, withClient } from '../setup.js';
import type { BenchContext, Metric, Scenario } from '../types.js';
import { measureGraphileWorker } from './cycle-graphile.js';
import { measurePgBoss, measurePgBossUnbatched } from './cycle-pgboss.js';
import { measurePie } from './cycle-pie.js';
import type { WindowCost } from './cycle-cost.js';
import { describeTerms, measureWindow, type SideResult, TERMS } from './cycle-terms.js';

/** Rounds of the three sides in a full run (a quick run measures one). */
const ROUNDS = 3;

/**
 * The full job cycle, in jobs completed per second: jobs created one per call by producers,
 * fetched in batches by consumers, run (noop) and completed. PIE against pg-boss and
 * graphile-worker at the same terms (cycle-terms.ts: producers, consumers, batch, pool,
 * warm-up, window), one after the other on the same PostgreSQL server, each in a database of
 * its own (PIE in the bench's). BENCHMARKS.md, "The cycle at equal terms", says what each side
 * does and what is not like for like.
 *
 * A full run measures the three sides in three rounds, each round in another order, and
 * judges the median round's ratios: each is taken between windows minutes apart at most, so
 * the host's drift (seen: a peer's rate rising by half between runs of the same build hours
 * apart, and by a fifth within one run) weighs on both sides of a ratio alike, and one slow
 * window does not decide it. Every round's figures are kept (`cycle.round_N.*`).
 *
 * Every side's clients run inside the orchestrator's process: PIE's HTTP producers and
 * workers, and pg-boss and graphile-worker themselves (libraries, so all of their work happens
 * there). PIE also pays HTTP, to a `pie serve` on the same machine, for every creation, claim
 * and completion, where the peers speak SQL from the process that makes the load. No figure
 * is what clients on their own machines would reach.
 *
 * The older figure, pg-boss fetching and completing one job per call with 16 consumers, stays
 * as `cycle.pgboss_unbatched.jobs_per_s`, labelled not like for like; no target reads it.
 *
 * During every side's window, the CPU time of PostgreSQL (the server's whole process tree), of
 * `pie serve` on PIE's side, of the bench's process and of the whole machine, per job
 * completed, the share of the cores left idle, and the WAL the server wrote and flushed
 * (`cycle.<side>.*`, from each side's median round; cycle-cost.ts): what a ratio is made of.
 * From PIE's PostgreSQL CPU, `db_ceiling.jobs_per_s_per_pg_core`: the jobs/s of PIE's cycle
 * one core of PostgreSQL would carry if its CPU were the only limit (docs/SCALING.md).
 */

/** PIE's rate over a peer's, to three decimals. */
const ratio = (pie: number, peer: number) =>
  peer === 0 ? 0 : Math.round((pie / peer) * 1000) / 1000;

type Side = 'pie' | 'pgboss' | 'graphile_worker';
/** Each round starts one later in this order, so no side always runs first or last. */
const ORDER: readonly Side[] = ['pie', 'pgboss', 'graphile_worker'];

type Round = Record<Side, SideResult>;

/**
 * VACUUM ANALYZE of a side's database before its window, outside it. Where autovacuum is off
 * (this machine's server), PIE vacuums and analyzes its own tables, and the peers rely on
 * autovacuum, which does nothing: in rounds without it both peers lost about a sixth from
 * their first round to the next two and PIE did not (two full runs), and with it
 * graphile-worker made a quarter more from the second round on, once its tables had been
 * analyzed with rows in them. With autovacuum on, as a user would run, every side's tables get
 * both; here the bench gives them.
 */
async function vacuumBeforeWindow(ctx: BenchContext): Promise<void> {
  const started = performance.now();
  await withClient(ctx.databaseUrl, (client) => client.query('vacuum (analyze)'));
  ctx.log(`cycle: vacuumed the database in ${Math.round(performance.now() - started)} ms`);
}

/**
 * Each peer has a database of its own on the same server, as a user would run it, and PIE has
 * the bench's. In one database, a peer ran slower after another had run there: graphile-worker
 * made 711 jobs/s, then 633 and 622 after one pg-boss window in the same database (its
 * PostgreSQL CPU a job 1.52 ms, then 1.81 and 1.75), and 785, then 833 and 781 with pg-boss in
 * another database; a PIE window in its database changed nothing (746 and 782, then 775 and
 * 775). The cause inside PostgreSQL was not found.
 */
type Databases = Record<Side, string>;

async function sideDatabases(ctx: BenchContext): Promise<Databases> {
  return {
    pie: ctx.databaseUrl,
    pgboss: await createBenchDatabase(ctx.databaseUrl, 'pgboss'),
    graphile_worker: await createBenchDatabase(ctx.databaseUrl, 'graphile'),
  };
}

async function measureRound(ctx: BenchContext, dbs: Databases, round: number): Promise<Round> {
  const results: Partial<Round> = {};
  for (let i = 0; i < ORDER.length; i++) {
    const side = ORDER[(round + i) % ORDER.length]!;
    const sideCtx = { ...ctx, databaseUrl: dbs[side] };
    await vacuumBeforeWindow(sideCtx);
    if (side === 'pie') results.pie = await measurePie(sideCtx);
    else if (side === 'pgboss') results.pgboss = await measurePgBoss(sideCtx);
    else results.graphile_worker = await measureGraphileWorker(sideCtx);
  }
  return results as Round;
}

/** A side's window cost as metrics, `cycle.<side>.*` (PIE's own server only on PIE's side). */
function costMetrics(side: Side, c: WindowCost): Metric[] {
  const metric = (name: string, value: number | undefined, unit: string, note?: string) =>
    value === undefined
      ? []
      : [{ name: `cycle.${side}.${name}`, value, unit, ...(note === undefined ? {} : { note }) }];
  return [
    ...metric(
      'pg_cpu_ms_per_job',
      c.postgresMsPerJob,
      'ms',
      "PostgreSQL's processes, every database on the server",
    ),
    ...metric('pie_cpu_ms_per_job', c.serviceMsPerJob, 'ms', '`pie serve`'),
    ...metric(
      'client_cpu_ms_per_job',
      c.clientsMsPerJob,
      'ms',
      side === 'pie'
        ? "the bench's process: PIE's producers and workers"
        : "the bench's process, where the library runs",
    ),
    ...metric('machine_cpu_ms_per_job', c.machineMsPerJob, 'ms', 'every process on the machine'),
    ...metric('idle_pct', c.idlePct, '%', "the machine's cores left idle in the window"),
    ...metric('wal_bytes_per_job', c.walBytesPerJob, 'B'),
    ...metric('wal_syncs_per_s', c.walSyncsPerS, '/s', 'WAL flushes'),
  ];
}

export const scenario: Scenario = async (ctx) => {
  ctx.log(
    `cycle: terms for PIE, pg-boss and graphile-worker: ${describeTerms(measureWindow(ctx))}`,
  );
  const count = ctx.quick ? 1 : ROUNDS;
  const dbs = await sideDatabases(ctx);
  if (!ctx.quick) {
    // Unmeasured: each side's tables get rows, so the vacuum before the first round gives
    // them the statistics every later round has (a quick run skips this, and its figures
    // are not for judging).
    ctx.log('cycle: priming each side with a short unmeasured run');
    await measureRound({ ...ctx, quick: true }, dbs, 0);
  }
  const rounds: Round[] = [];
  for (let round = 0; round < count; round++) {
    if (count > 1) ctx.log(`cycle: round ${round + 1} of ${count}`);
    rounds.push(await measureRound(ctx, dbs, round));
  }
  const unbatched = await measurePgBossUnbatched({ ...ctx, databaseUrl: dbs.pgboss });
  const toPgBoss = rounds.map((r) => ratio(r.pie.jobsPerS, r.pgboss.jobsPerS));
  const toGraphile = rounds.map((r) => ratio(r.pie.jobsPerS, r.graphile_worker.jobsPerS));
  const roundMetrics: Metric[] =
    rounds.length === 1
      ? []
      : rounds.flatMap((r, i) => [
          ...ORDER.map((side) => ({
            name: `cycle.round_${i + 1}.${side}.jobs_per_s`,
            value: Math.round(r[side].jobsPerS * 100) / 100,
            unit: 'jobs/s',
          })),
          { name: `cycle.round_${i + 1}.ratio_to_pgboss`, value: toPgBoss[i]!, unit: 'x' },
          {
            name: `cycle.round_${i + 1}.ratio_to_graphile_worker`,
            value: toGraphile[i]!,
            unit: 'x',
          },
        ]);
  const ofRounds = rounds.length === 1 ? undefined : `the median of ${rounds.length} rounds`;
  // Each side's cost figures come from its median round.
  const costOf = (side: Side) => medianBy(rounds, (r) => r[side].jobsPerS)[side].cost;
  const cost = ORDER.flatMap((side) => costMetrics(side, costOf(side)));
  const pgMs = costOf('pie').postgresMsPerJob;
  const ceiling: Metric[] =
    pgMs === undefined || pgMs === 0
      ? []
      : [
          {
            name: 'db_ceiling.jobs_per_s_per_pg_core',
            value: Math.round(1000 / pgMs),
            unit: 'jobs/s',
            note: "1000 / cycle.pie.pg_cpu_ms_per_job: PostgreSQL's CPU only, not I/O",
          },
        ];
  const withNote = (metric: Metric): Metric =>
    ofRounds === undefined ? metric : { ...metric, note: ofRounds };
  return [
    ...roundMetrics,
    withNote({
      name: 'cycle.pie.jobs_per_s',
      value: median(rounds.map((r) => r.pie.jobsPerS)),
      unit: 'jobs/s',
    }),
    withNote({
      name: 'cycle.pgboss.jobs_per_s',
      value: median(rounds.map((r) => r.pgboss.jobsPerS)),
      unit: 'jobs/s',
    }),
    withNote({
      name: 'cycle.graphile_worker.jobs_per_s',
      value: median(rounds.map((r) => r.graphile_worker.jobsPerS)),
      unit: 'jobs/s',
    }),
    {
      name: 'cycle.pgboss_unbatched.jobs_per_s',
      value: unbatched.jobsPerS,
      unit: 'jobs/s',
      note: `not like for like: 1 job a fetch and a complete, ${TERMS.producers} consumers`,
    },
    withNote({ name: 'cycle.ratio_to_pgboss', value: median(toPgBoss), unit: 'x' }),
    withNote({ name: 'cycle.ratio_to_graphile_worker', value: median(toGraphile), unit: 'x' }),
    ...cost,
    ...ceiling,
  ] satisfies Metric[];
};
