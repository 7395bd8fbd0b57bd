import { Logger, makeWorkerUtils, run, runMigrations, type Runner } from 'graphile-worker';
import pg from 'pg';
import type { BenchContext } from '../types.js';
import { costOverWindow } from './cycle-cost.js';
import { logSide, Loops, measureWindow, type SideResult, TERMS, waitUntil } from './cycle-terms.js';

/**
 * graphile-worker's side of the cycle (0.17: the last line that supports Node 20; 0.18 needs
 * Node 22), in the same process as the load (it is a library), on its own schema
 * `graphile_worker` in the database the cycle gives it (`ctx.databaseUrl`). One `pg` pool of
 * TERMS.pool connections serves everything on this side: the producers' WorkerUtils and every
 * runner.
 *
 * - Producers: TERMS.producers loops, each `addJob` of one job per call through WorkerUtils.
 * - Consumers: TERMS.consumers runners (`run()`, graphile-worker's own worker pools), each with
 *   its batching options of 0.17 as its documentation sets them out: a local queue of
 *   TERMS.batch jobs (one query fetches and locks that many), `concurrentJobs` TERMS.batch so
 *   a whole fetch runs at once, and `completeJobBatchDelay` 0 (`failJobBatchDelay` 0): the
 *   completions made in the same turn go to PostgreSQL in one statement.
 *
 * graphile-worker deletes a job when it completes it and has no hook after that commit, so
 * completions are counted from the database: at the start and at the end of the window,
 * jobs created so far less the rows left in its table (read on a connection of the bench's
 * own, outside the pool). Producers' calls in flight at those moments make the count uncertain
 * by at most TERMS.producers jobs at each end.
 */

const TASK = 'bench_cycle';

/**
 * graphile-worker's log, kept quiet: only its warnings and errors reach the bench's log, each
 * once (every runner repeats them). One it gives at the cycle's terms: "having maxPoolSize (20)
 * smaller than concurrency (50) may lead to non-optimal performance", its rule of thumb (its
 * docs: a pool of 10 or concurrentJobs + 2, whichever is larger), which the terms' pool of 20
 * for the whole side does not follow. Noop jobs hold no connection while they run: a runner
 * uses one for each fetch of 50 and one for each statement completing a turn's jobs.
 */
function quietLogger(ctx: BenchContext): Logger {
  const seen = new Set<string>();
  return new Logger(() => (level, message) => {
    const text = String(level);
    if ((text === 'error' || text === 'warning') && !seen.has(message)) {
      seen.add(message);
      ctx.log(`cycle: graphile-worker ${text}: ${message}`);
    }
  });
}

export async function measureGraphileWorker(ctx: BenchContext): Promise<SideResult> {
  const logger = quietLogger(ctx);
  const pool = new pg.Pool({ connectionString: ctx.databaseUrl, max: TERMS.pool });
  // The handlers graphile-worker asks a pool it is given to have (it warns on the console
  // otherwise): an idle client's error, and a checked-out client's.
  pool.on('error', (error) => ctx.log(`cycle: graphile-worker pool error: ${error.message}`));
  pool.on('connect', (client) =>
    client.on('error', (error) => ctx.log(`cycle: graphile-worker client error: ${error.message}`)),
  );
  const observer = new pg.Client({ connectionString: ctx.databaseUrl });
  const runners: Runner[] = [];
  // A runner that fails on its own (its promise rejects) fails the side once the window ends.
  let runnerFailure: { error: unknown } | undefined;
  let utils: Awaited<ReturnType<typeof makeWorkerUtils>> | undefined;
  try {
    await observer.connect();
    // Installs its schema once, before the runners start.
    await runMigrations({ pgPool: pool, logger });
    utils = await makeWorkerUtils({ pgPool: pool, logger });
    for (let i = 0; i < TERMS.consumers; i++) {
      runners.push(
        await run({
          pgPool: pool,
          logger,
          noHandleSignals: true,
          taskList: { [TASK]: async () => {} },
          // No crontab file is looked for.
          parsedCronItems: [],
          preset: {
            worker: {
              concurrentJobs: TERMS.batch,
              localQueue: { size: TERMS.batch },
              completeJobBatchDelay: 0,
              failJobBatchDelay: 0,
            },
          },
        }),
      );
      runners[i]!.promise.catch((error: unknown) => {
        runnerFailure ??= { error };
      });
    }

    let created = 0;
    const completedSoFar = async () => {
      const committed = created;
      const { rows } = await observer.query<{ n: number }>(
        'select count(*)::int as n from graphile_worker._private_jobs',
      );
      return committed - rows[0]!.n;
    };

    const w = measureWindow(ctx);
    const loops = new Loops(w);
    const addJob = utils.addJob;
    const produce = async (producer: number) => {
      while (loops.running()) {
        await addJob(TASK, { producer });
        created += 1;
      }
    };
    const counts = (async () => {
      await waitUntil(w.from);
      const atStart = await completedSoFar();
      await waitUntil(w.until);
      return (await completedSoFar()) - atStart;
    })();
    const cost = costOverWindow(ctx, 'graphile-worker', w, () => counts);
    // Awaited below; if the producers fail first, their own failures must not go unhandled.
    counts.catch(() => {});
    cost.catch(() => {});

    ctx.log(
      `cycle: graphile-worker: ${TERMS.producers} producers (addJob through WorkerUtils), ` +
        `${TERMS.consumers} runners, each a local queue of ${TERMS.batch}, concurrentJobs ` +
        `${TERMS.batch}, completeJobBatchDelay 0`,
    );
    loops.start(TERMS.producers, produce);
    await loops.done();
    const counted = await counts;
    if (runnerFailure !== undefined) throw runnerFailure.error;
    // Graceful: the runners finish and complete what they hold and return their local queues.
    await Promise.all(runners.splice(0).map((runner) => runner.stop()));
    const completed = await completedSoFar();
    const result = { jobsPerS: counted / w.seconds, created, completed, cost: await cost };
    logSide(ctx, 'graphile-worker', result);
    return result;
  } finally {
    await Promise.all(runners.map((runner) => runner.stop().catch(() => {})));
    await utils?.release();
    await observer.end().catch(() => {});
    await pool.end();
  }
}
