import type { Metric, Scenario } from '../types.js';
import { measureGraphileWorker } from './cycle-graphile.js';
import { measurePgBoss, measurePgBossUnbatched } from './cycle-pgboss.js';
import { measurePie } from './cycle-pie.js';
import { describeTerms, measureWindow, TERMS } from './cycle-terms.js';

/**
 * The full job cycle, in jobs completed per second: jobs created one per call by producers,
 * fetched in batches by consumers, run (noop) and completed. PIE against pg-boss and
 * graphile-worker at the same terms (cycle-terms.ts: producers, consumers, batch, pool,
 * warm-up, window), one after the other on the same PostgreSQL database, each on its own
 * schema. BENCHMARKS.md, "The cycle at equal terms", says what each side does and what is not
 * like for like.
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
 * During PIE's window only, the CPU time of PostgreSQL (the server's whole process tree), of
 * `pie serve`, of PIE's clients and of the whole machine, per job completed
 * (`cycle.pie.*_cpu_ms_per_job`), and the WAL the server wrote and flushed. From PostgreSQL's
 * CPU, `db_ceiling.jobs_per_s_per_pg_core`: the jobs/s of PIE's cycle one core of PostgreSQL
 * would carry if its CPU were the only limit (docs/SCALING.md).
 */

/** PIE's rate over a peer's, to three decimals. */
const ratio = (pie: number, peer: number) =>
  peer === 0 ? 0 : Math.round((pie / peer) * 1000) / 1000;

export const scenario: Scenario = async (ctx) => {
  ctx.log(
    `cycle: terms for PIE, pg-boss and graphile-worker: ${describeTerms(measureWindow(ctx))}`,
  );
  const pie = await measurePie(ctx);
  const pgboss = await measurePgBoss(ctx);
  const graphile = await measureGraphileWorker(ctx);
  const unbatched = await measurePgBossUnbatched(ctx);
  const pgMs = pie.cost.postgresMsPerJob;
  const syncs = pie.cost.walSyncsPerS;
  const cost: Metric[] = [
    ...(pgMs === undefined
      ? []
      : [
          {
            name: 'cycle.pie.pg_cpu_ms_per_job',
            value: pgMs,
            unit: 'ms',
            note: "PostgreSQL's processes, every database on the server",
          },
        ]),
    { name: 'cycle.pie.pie_cpu_ms_per_job', value: pie.cost.pieMsPerJob, unit: 'ms' },
    {
      name: 'cycle.pie.client_cpu_ms_per_job',
      value: pie.cost.clientsMsPerJob,
      unit: 'ms',
      note: "the bench's process: PIE's producers and workers",
    },
    {
      name: 'cycle.pie.machine_cpu_ms_per_job',
      value: pie.cost.machineMsPerJob,
      unit: 'ms',
      note: 'every process on the machine: beyond the three above, other load',
    },
    { name: 'cycle.pie.wal_bytes_per_job', value: pie.cost.walBytesPerJob, unit: 'B' },
    ...(syncs === undefined
      ? []
      : [{ name: 'cycle.pie.wal_syncs_per_s', value: syncs, unit: '/s', note: 'WAL flushes' }]),
    ...(pgMs === undefined || pgMs === 0
      ? []
      : [
          {
            name: 'db_ceiling.jobs_per_s_per_pg_core',
            value: Math.round(1000 / pgMs),
            unit: 'jobs/s',
            note: "1000 / pg_cpu_ms_per_job: PostgreSQL's CPU only, not I/O",
          },
        ]),
  ];
  return [
    { name: 'cycle.pie.jobs_per_s', value: pie.jobsPerS, unit: 'jobs/s' },
    ...cost,
    { name: 'cycle.pgboss.jobs_per_s', value: pgboss.jobsPerS, unit: 'jobs/s' },
    { name: 'cycle.graphile_worker.jobs_per_s', value: graphile.jobsPerS, unit: 'jobs/s' },
    {
      name: 'cycle.pgboss_unbatched.jobs_per_s',
      value: unbatched.jobsPerS,
      unit: 'jobs/s',
      note: `not like for like: 1 job a fetch and a complete, ${TERMS.producers} consumers`,
    },
    { name: 'cycle.ratio_to_pgboss', value: ratio(pie.jobsPerS, pgboss.jobsPerS), unit: 'x' },
    {
      name: 'cycle.ratio_to_graphile_worker',
      value: ratio(pie.jobsPerS, graphile.jobsPerS),
      unit: 'x',
    },
  ] satisfies Metric[];
};
