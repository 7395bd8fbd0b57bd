import { performance } from 'node:perf_hooks';
import type { PieClient } from './tenant.js';
import { type ClaimAnswer, type ClaimedJob, sleep } from './tenant.js';

/**
 * The requests the retained scenario times, each with `performance.now()` around an undici
 * request on a keep-alive connection (sub-millisecond, unlike autocannon's whole milliseconds):
 * run-job in a closed loop, pull workers draining the queue, the jobs list under each filter,
 * and a mixed open-loop load for retention to run under.
 */

/** Latencies in ms by route, and when each request over 50 ms ended (to line them up). */
export class Latencies {
  private readonly samples = new Map<string, number[]>();
  readonly slow: { at: number; route: string; ms: number }[] = [];

  add(route: string, ms: number): void {
    const list = this.samples.get(route) ?? [];
    list.push(ms);
    this.samples.set(route, list);
    if (ms > 50) this.slow.push({ at: performance.now(), route, ms });
  }

  routes(): string[] {
    return [...this.samples.keys()];
  }

  summary(route: string): { count: number; p50: number; p99: number } {
    const sorted = [...(this.samples.get(route) ?? [])].sort((a, b) => a - b);
    return { count: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
  }
}

/** The nearest-rank percentile of an ascending list. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function timed<T>(lat: Latencies, route: string, call: () => Promise<T>): Promise<T> {
  const started = performance.now();
  const result = await call();
  lat.add(route, performance.now() - started);
  return result;
}

export interface Target {
  /** `POST` here to run a job; one per service, used in turn. */
  runPaths: string[];
  claimPath: string;
  /** `GET` here for the domain's jobs list. */
  listPath: string;
}

/** The list filters the API documents, and none; each name becomes `list_<name>`. */
export const LIST_FILTERS: Record<string, string> = {
  none: '',
  status_failure: '?status=failure',
  status_queued: '?status=queued',
  service_id: '?service_id=service-42',
  job_type: '?job_type=training',
  assignment_key: '?assignment_key=shadow',
};

/** `count` run-jobs over `connections` closed loops (each sends its next on its answer). */
export async function runJobs(
  pie: PieClient,
  target: Target,
  count: number,
  connections: number,
  lat: Latencies,
): Promise<void> {
  let next = 0;
  const loop = async () => {
    while (next < count) {
      const path = target.runPaths[next++ % target.runPaths.length]!;
      await timed(lat, 'run_job', () => pie.expect(202, 'POST', path, {}));
    }
  };
  await Promise.all(Array.from({ length: connections }, loop));
}

function claim(pie: PieClient, target: Target, worker: string, maxJobs: number, waitMs: number) {
  const body = { worker_id: worker, max_jobs: maxJobs, wait_ms: waitMs, lease_s: 300 };
  return pie.call<ClaimAnswer>('POST', target.claimPath, body);
}

function complete(pie: PieClient, job: ClaimedJob, lat: Latencies) {
  return timed(lat, 'complete', () =>
    pie.expect(
      [200, 207],
      'POST',
      job.callback.url,
      { status: 'success', output: { eta: 4 } },
      {
        token: job.callback.token,
      },
    ),
  );
}

/**
 * Pull workers claim batches and complete each job (concurrently within a batch) until `total`
 * jobs are done. Only claims that got jobs are timed: the queue receives nothing meanwhile, so
 * an empty claim is one that waited out its `wait_ms` at the end.
 */
export async function drain(
  pie: PieClient,
  target: Target,
  total: number,
  options: { workers: number; maxJobs: number },
  lat: Latencies,
): Promise<void> {
  let completed = 0;
  const worker = async (index: number) => {
    while (completed < total) {
      const started = performance.now();
      const answer = await claim(pie, target, `bench-worker-${index}`, options.maxJobs, 100);
      if (answer.status !== 200) throw new Error(`claim answered ${answer.status}`);
      if (answer.body.jobs.length === 0) continue;
      lat.add('claim', performance.now() - started);
      await Promise.all(answer.body.jobs.map((job) => complete(pie, job, lat)));
      completed += answer.body.jobs.length;
    }
  };
  await Promise.all(Array.from({ length: options.workers }, (_, i) => worker(i)));
}

/** `rounds` rounds of one request per filter, one at a time, filters interleaved. */
export async function lists(
  pie: PieClient,
  target: Target,
  rounds: number,
  lat: Latencies,
): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    for (const [name, query] of Object.entries(LIST_FILTERS)) {
      await timed(lat, `list_${name}`, () => pie.expect(200, 'GET', target.listPath + query));
    }
  }
}

/**
 * A steady mixed load until `until()` says stop: run-jobs at `runPerS` a second, open loop (a
 * slow answer delays no later request); two pull workers polling every 50 ms without waiting
 * (`wait_ms` 0, so a claim's time is its own) and completing what they get; a list request
 * every 50 ms, filters in turn. Every route's latency goes to `lat` (list filters together, as
 * `list`).
 */
export async function mixedLoad(
  pie: PieClient,
  target: Target,
  runPerS: number,
  until: () => boolean,
  lat: Latencies,
): Promise<void> {
  let failure: { error: unknown } | undefined;
  const fail = (error: unknown) => (failure ??= { error });
  const going = () => failure === undefined && !until();
  const inFlight: Promise<unknown>[] = [];
  const openLoop = async (perS: number, request: (i: number) => Promise<unknown>) => {
    const start = performance.now();
    for (let i = 0; going(); i++) {
      const wait = start + (i * 1000) / perS - performance.now();
      if (wait > 0) await sleep(wait);
      inFlight.push(request(i).catch(fail));
    }
  };
  const filters = Object.values(LIST_FILTERS);
  const worker = async (index: number) => {
    while (going()) {
      const started = performance.now();
      const answer = await claim(pie, target, `bench-load-worker-${index}`, 20, 0);
      if (answer.status !== 200) throw new Error(`claim answered ${answer.status}`);
      lat.add('claim', performance.now() - started);
      await Promise.all(answer.body.jobs.map((job) => complete(pie, job, lat)));
      await sleep(50);
    }
  };
  await Promise.all([
    openLoop(runPerS, (i) =>
      timed(lat, 'run_job', () =>
        pie.expect(202, 'POST', target.runPaths[i % target.runPaths.length]!, {}),
      ),
    ),
    openLoop(20, (i) =>
      timed(lat, 'list', () => pie.expect(200, 'GET', target.listPath + filters[i % 6]!)),
    ),
    worker(0).catch(fail),
    worker(1).catch(fail),
  ]);
  await Promise.all(inFlight);
  if (failure !== undefined) throw failure.error;
}
