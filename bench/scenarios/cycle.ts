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
  return [
    { name: 'cycle.pie.jobs_per_s', value: pie.jobsPerS, unit: 'jobs/s' },
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
