import { performance } from 'node:perf_hooks';
import PgBoss from 'pg-boss';
import type { BenchContext } from '../types.js';
import { costOverWindow } from './cycle-cost.js';
import { inWindow, logSide, Loops, measureWindow, type SideResult, TERMS } from './cycle-terms.js';
import { sleep } from './tenant.js';

/**
 * pg-boss's side of the cycle, in the same process as the load (it is a library): on its own
 * schema, `pgboss`, in the database the cycle gives it (`ctx.databaseUrl`), with a pool of
 * TERMS.pool connections.
 *
 * - `measurePgBoss`, at the cycle's terms: TERMS.producers loops `send`ing one job per call,
 *   TERMS.consumers loops each `fetch`ing up to TERMS.batch jobs and `complete`-ing them with
 *   one call.
 * - `measurePgBossUnbatched`, the bench's older figure, NOT like for like: one job per fetch
 *   and per complete, over TERMS.producers consumer loops.
 */

/** When a fetch finds nothing: pg-boss has no long-poll, so look again shortly. */
const EMPTY_FETCH_PAUSE_MS = 5;

async function withPgBoss<T>(
  ctx: BenchContext,
  queue: string,
  work: (boss: PgBoss) => Promise<T>,
): Promise<T> {
  const boss = new PgBoss({ connectionString: ctx.databaseUrl, max: TERMS.pool });
  // An 'error' event without a listener would throw from the emitter and end the process.
  boss.on('error', (error) => ctx.log(`cycle: pg-boss error: ${error.message}`));
  // start() creates (or migrates) its own schema, `pgboss`.
  await boss.start();
  try {
    await boss.createQueue(queue);
    return await work(boss);
  } finally {
    // Not graceful: every fetched job has been completed, and nothing else is in flight.
    await boss.stop({ graceful: false });
  }
}

/** The cycle with `consumers` loops fetching up to `batch` jobs and completing them at once. */
async function cycle(
  ctx: BenchContext,
  label: string,
  boss: PgBoss,
  queue: string,
  consumers: number,
  batch: number,
): Promise<SideResult> {
  let created = 0;
  let completed = 0;
  let counted = 0;
  const w = measureWindow(ctx);
  const loops = new Loops(w);

  const produce = async (producer: number) => {
    while (loops.running()) {
      await boss.send(queue, { producer });
      created += 1;
    }
  };

  const consume = async () => {
    while (loops.running()) {
      const jobs = await boss.fetch(queue, { batchSize: batch });
      if (jobs.length === 0) {
        // Its own work() polls every 0.5 s at the least, which would only make it slower here.
        await sleep(EMPTY_FETCH_PAUSE_MS);
        continue;
      }
      await boss.complete(
        queue,
        jobs.map((job) => job.id),
      );
      completed += jobs.length;
      if (inWindow(w, performance.now())) counted += jobs.length;
    }
  };

  const cost = costOverWindow(ctx, label, w, () => counted);
  // Awaited below; if the loops fail first, its own failure must not go unhandled.
  cost.catch(() => {});
  loops.start(TERMS.producers, produce);
  loops.start(consumers, consume);
  await loops.done();
  return { jobsPerS: counted / w.seconds, created, completed, cost: await cost };
}

export async function measurePgBoss(ctx: BenchContext): Promise<SideResult> {
  return withPgBoss(ctx, 'bench-cycle', async (boss) => {
    ctx.log(
      `cycle: pg-boss: ${TERMS.producers} producers (send), ${TERMS.consumers} consumers ` +
        `(fetch with batchSize ${TERMS.batch}, then one complete with the fetch's ids)`,
    );
    const label = 'pg-boss';
    const result = await cycle(ctx, label, boss, 'bench-cycle', TERMS.consumers, TERMS.batch);
    logSide(ctx, label, result);
    return result;
  });
}

export async function measurePgBossUnbatched(ctx: BenchContext): Promise<SideResult> {
  return withPgBoss(ctx, 'bench-cycle-unbatched', async (boss) => {
    ctx.log(
      `cycle: pg-boss unbatched (NOT like for like): ${TERMS.producers} producers (send), ` +
        `${TERMS.producers} consumers fetching one job and completing it`,
    );
    const label = 'pg-boss unbatched (not like for like)';
    const result = await cycle(ctx, label, boss, 'bench-cycle-unbatched', TERMS.producers, 1);
    logSide(ctx, label, result);
    return result;
  });
}
