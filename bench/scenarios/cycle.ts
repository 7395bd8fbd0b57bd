import { performance } from 'node:perf_hooks';
import PgBoss from 'pg-boss';
import type { BenchContext, Metric, Scenario } from '../types.js';
import {
  type ClaimAnswer,
  completeJob,
  createBenchTenant,
  PieClient,
  type RunJobAnswer,
  sleep,
} from './tenant.js';

/**
 * The full job cycle, end to end, in jobs completed per second: PIE (run a job over HTTP, a
 * pull worker claims it in a batch and completes it through its callback) against pg-boss
 * (send, fetch, complete, one job per call) on the same PostgreSQL database, at the same
 * concurrency, one after the other.
 *
 * Both sides' clients run inside the orchestrator's process: PIE's HTTP producers and workers,
 * and pg-boss itself (a library, so all of its work happens there). That is acceptable for a
 * comparison: each side pays for its own client in the same place, on the same machine as
 * PostgreSQL (and, for PIE, `pie serve`). Neither figure is what clients on their own
 * machines would reach.
 */

/** Producers on each side, and consumers on the pg-boss side. */
const CONCURRENCY = 16;
/** PIE pull workers; each completes its batch concurrently, so few loops keep PIE busy. */
const PIE_WORKERS = 4;
const CLAIM = { max_jobs: 50, wait_ms: 1000, lease_s: 60 };
const SERVICES = 4;
/** pg-boss's pool, the same size as the pool `pie serve` opens on PostgreSQL (20). */
const PGBOSS_POOL = 20;
const PGBOSS_QUEUE = 'bench-cycle';

interface Window {
  /** Completions from here on count (after the warm-up). */
  from: number;
  /** Producers and consumers stop here; later completions do not count. */
  until: number;
  seconds: number;
}

function measureWindow(ctx: BenchContext): Window {
  const warmupMs = ctx.quick ? 1000 : 2000;
  const measureMs = ctx.quick ? 5000 : 20_000;
  const from = performance.now() + warmupMs;
  return { from, until: from + measureMs, seconds: measureMs / 1000 };
}

const inWindow = (w: Window, at: number) => at >= w.from && at < w.until;

/**
 * The loops of one side, each running until the window ends. The first failure stops them all
 * (at their next turn) and is thrown once every loop has stopped, so none is left running.
 */
class Loops {
  private failure: { error: unknown } | undefined;
  private readonly pending: Promise<void>[] = [];

  constructor(private readonly w: Window) {}

  readonly running = () => this.failure === undefined && performance.now() < this.w.until;

  start(count: number, loop: (index: number) => Promise<void>) {
    for (let i = 0; i < count; i++) {
      this.pending.push(
        loop(i).catch((error: unknown) => {
          this.failure ??= { error };
        }),
      );
    }
  }

  async done(): Promise<void> {
    await Promise.all(this.pending);
    if (this.failure !== undefined) throw this.failure.error;
  }
}

export const scenario: Scenario = async (ctx) => {
  const pie = await measurePie(ctx);
  const pgboss = await measurePgBoss(ctx);
  return [
    { name: 'cycle.pie.jobs_per_s', value: pie, unit: 'jobs/s' },
    { name: 'cycle.pgboss.jobs_per_s', value: pgboss, unit: 'jobs/s' },
    { name: 'cycle.ratio', value: pgboss === 0 ? 0 : pie / pgboss, unit: 'x' },
  ] satisfies Metric[];
};

async function measurePie(ctx: BenchContext): Promise<number> {
  const pie = new PieClient(ctx.pieUrl, ctx.adminToken);
  try {
    const tenant = await createBenchTenant(pie, 'bench-cycle', 'bench-cycle-model', SERVICES);
    let created = 0;
    let completed = 0;
    let counted = 0;
    const w = measureWindow(ctx);
    const loops = new Loops(w);

    const produce = async (producer: number) => {
      // Each producer keeps to one service, so all services get jobs.
      const path = tenant.runPath(tenant.services[producer % tenant.services.length]!);
      while (loops.running()) {
        await pie.expect<RunJobAnswer>(202, 'POST', path, {});
        created += 1;
      }
    };

    const work = async (worker: number) => {
      const body = { worker_id: `bench-worker-${worker}`, ...CLAIM };
      // The loop stops claiming at the end of the window but completes what it claimed, so no
      // job is left leased.
      while (loops.running()) {
        const { jobs } = await pie.expect<ClaimAnswer>(200, 'POST', tenant.claimPath, body);
        await Promise.all(
          jobs.map(async (job) => {
            await completeJob(pie, job);
            completed += 1;
            if (inWindow(w, performance.now())) counted += 1;
          }),
        );
      }
    };

    ctx.log(
      `cycle: PIE, ${CONCURRENCY} producers, ${PIE_WORKERS} workers claiming up to ` +
        `${CLAIM.max_jobs}, ${w.seconds} s after a warm-up`,
    );
    loops.start(CONCURRENCY, produce);
    loops.start(PIE_WORKERS, work);
    await loops.done();
    const rate = counted / w.seconds;
    // Producers can outrun the workers; what is left queued says which side was the limit.
    ctx.log(
      `cycle: PIE ${rate.toFixed(0)} jobs/s completed (${created} run, ${completed} ` +
        `completed, ${created - completed} left queued)`,
    );
    return rate;
  } finally {
    await pie.close();
  }
}

async function measurePgBoss(ctx: BenchContext): Promise<number> {
  const boss = new PgBoss({ connectionString: ctx.databaseUrl, max: PGBOSS_POOL });
  // An 'error' event without a listener would throw from the emitter and end the process.
  boss.on('error', (error) => ctx.log(`cycle: pg-boss error: ${error.message}`));
  // start() creates (or migrates) its own schema, `pgboss`, beside PIE's tables.
  await boss.start();
  try {
    await boss.createQueue(PGBOSS_QUEUE);
    let sent = 0;
    let completed = 0;
    let counted = 0;
    const w = measureWindow(ctx);
    const loops = new Loops(w);

    const produce = async (producer: number) => {
      while (loops.running()) {
        await boss.send(PGBOSS_QUEUE, { producer });
        sent += 1;
      }
    };

    const consume = async () => {
      while (loops.running()) {
        const [job] = await boss.fetch(PGBOSS_QUEUE);
        if (job === undefined) {
          // Nothing ready: pg-boss has no long-poll, so look again shortly (its own work()
          // polls every 0.5 s at the least, which would only make it slower here).
          await sleep(5);
          continue;
        }
        await boss.complete(PGBOSS_QUEUE, job.id);
        completed += 1;
        if (inWindow(w, performance.now())) counted += 1;
      }
    };

    ctx.log(
      `cycle: pg-boss, ${CONCURRENCY} producers, ${CONCURRENCY} consumers, ` +
        `${w.seconds} s after a warm-up`,
    );
    loops.start(CONCURRENCY, produce);
    loops.start(CONCURRENCY, consume);
    await loops.done();
    const rate = counted / w.seconds;
    ctx.log(
      `cycle: pg-boss ${rate.toFixed(0)} jobs/s completed (${sent} sent, ${completed} ` +
        `completed, ${sent - completed} left queued)`,
    );
    return rate;
  } finally {
    // Not graceful: every fetched job has been completed, and nothing else is in flight.
    await boss.stop({ graceful: false });
  }
}
