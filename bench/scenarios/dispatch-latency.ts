import { performance } from 'node:perf_hooks';
import type { Metric, Scenario } from '../types.js';
import {
  type ClaimAnswer,
  completeJob,
  createBenchTenant,
  PieClient,
  type RunJobAnswer,
  sleep,
} from './tenant.js';

/**
 * How long a job takes from its commit to a waiting pull worker receiving it, at a steady
 * 200 jobs/s: one worker long-polls claims in a loop while a producer runs jobs on a timer.
 *
 * Both ends run in this process, so one `performance.now()` clock times them. The commit
 * happens just before PIE sends the 202, so "202 arrived → claim answer arrived" is the
 * latency (clamped at 0: the claim answer can overtake the 202). "Request sent → claim answer
 * arrived" bounds it from above: it adds the run request's own time.
 */

const RATE = 200;
const CLAIM = { worker_id: 'bench-latency-worker', max_jobs: 10, wait_ms: 5000, lease_s: 60 };
/**
 * Jobs of the warm-up (connections, JIT, prepared statements) are run but not measured: 1 s in
 * quick runs, 3 s in full ones, as the other loads. On this machine a server's first second
 * leaves a backlog of up to 300 ms that takes one to two more to drain (BENCHMARKS.md).
 */
const warmupMs = (quick: boolean) => (quick ? 1000 : 3000);
/** How long measured jobs may take to reach the worker once the producer is done. */
const DRAIN_MS = 10_000;

interface Sent {
  /** When the run request was sent. */
  started: number;
  /** When its 202 arrived. */
  accepted: number;
}

export const scenario: Scenario = async (ctx) => {
  const pie = new PieClient(ctx.pieUrl, ctx.adminToken);
  try {
    const tenant = await createBenchTenant(pie, 'bench-latency', 'bench-latency-model', 1);
    const runPath = tenant.runPath(tenant.services[0]!);
    const measureMs = ctx.quick ? 5000 : 20_000;

    const sent = new Map<string, Sent>();
    const received = new Map<string, number>();
    const stop = new AbortController();
    let failure: { error: unknown } | undefined;
    const fail = (error: unknown) => {
      failure ??= { error };
      stop.abort();
    };

    // The worker goes straight back to waiting: it completes each job without awaiting it,
    // as a worker handing jobs to its own pool would, so completions never delay a claim.
    const completions: Promise<void>[] = [];
    const worker = (async () => {
      while (!stop.signal.aborted) {
        let answer: ClaimAnswer;
        try {
          answer = await pie.expect<ClaimAnswer>(200, 'POST', tenant.claimPath, CLAIM, {
            signal: stop.signal,
          });
        } catch (error) {
          if (stop.signal.aborted) return;
          throw error;
        }
        const at = performance.now();
        for (const job of answer.jobs) {
          received.set(job.job_id, at);
          completions.push(completeJob(pie, job).catch(fail));
        }
      }
    })().catch(fail);

    const runOne = async (measured: boolean) => {
      const started = performance.now();
      const { job_id } = await pie.expect<RunJobAnswer>(202, 'POST', runPath, {});
      if (measured) sent.set(job_id, { started, accepted: performance.now() });
    };

    // Open loop on a timer: job i is due at start + i / RATE whatever the earlier ones are
    // doing, so a slow answer delays no later job (a late timer fires the overdue ones at once).
    const produce = async (durationMs: number, measured: boolean) => {
      const start = performance.now();
      const total = Math.round((durationMs * RATE) / 1000);
      const running: Promise<void>[] = [];
      for (let i = 0; i < total && failure === undefined; i++) {
        const wait = start + (i * 1000) / RATE - performance.now();
        if (wait > 0) await sleep(wait);
        running.push(runOne(measured).catch(fail));
      }
      await Promise.all(running);
      return (performance.now() - start) / 1000;
    };

    ctx.log(`dispatch_latency: ${RATE} jobs/s for ${measureMs / 1000} s after a warm-up`);
    await produce(warmupMs(ctx.quick), false);
    const seconds = await produce(measureMs, true);

    const drainUntil = performance.now() + DRAIN_MS;
    while (failure === undefined && [...sent.keys()].some((id) => !received.has(id))) {
      if (performance.now() > drainUntil) {
        const missing = [...sent.keys()].filter((id) => !received.has(id)).length;
        fail(new Error(`${missing} of ${sent.size} jobs never reached the worker`));
        break;
      }
      await sleep(20);
    }
    stop.abort();
    await worker;
    await Promise.all(completions);
    if (failure !== undefined) throw failure.error;

    const latencies: number[] = [];
    const upper: number[] = [];
    for (const [id, times] of sent) {
      const at = received.get(id)!;
      latencies.push(Math.max(0, at - times.accepted));
      upper.push(at - times.started);
    }
    latencies.sort((a, b) => a - b);
    upper.sort((a, b) => a - b);
    const p50 = percentile(latencies, 50);
    const p99 = percentile(latencies, 99);
    ctx.log(
      `dispatch_latency: ${sent.size} jobs at ${(sent.size / seconds).toFixed(0)} jobs/s: ` +
        `p50 ${p50.toFixed(2)} ms, p99 ${p99.toFixed(2)} ms ` +
        `(from the request: p50 ${percentile(upper, 50).toFixed(2)} ms, ` +
        `p99 ${percentile(upper, 99).toFixed(2)} ms)`,
    );
    return [
      { name: 'dispatch_latency.p50_ms', value: p50, unit: 'ms' },
      { name: 'dispatch_latency.p99_ms', value: p99, unit: 'ms' },
      { name: 'dispatch_latency.upper_p50_ms', value: percentile(upper, 50), unit: 'ms' },
      { name: 'dispatch_latency.upper_p99_ms', value: percentile(upper, 99), unit: 'ms' },
      { name: 'dispatch_latency.jobs', value: sent.size, unit: 'jobs' },
    ] satisfies Metric[];
  } finally {
    await pie.close();
  }
};

/** The nearest-rank percentile of an ascending list. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
