import { performance } from 'node:perf_hooks';
import type { PieClient } from './tenant.js';
import { type ClaimAnswer, type ClaimedJob, sleep } from './tenant.js';

/**
 * The requests the retained scenario times, each with `performance.now()` around an undici
 * request on a keep-alive connection (sub-millisecond, unlike autocannon's whole milliseconds):
 * run-job in a closed loop, pull workers draining the queue, the jobs list under each filter,
 * and a mixed open-loop load for retention to run under.
 */

/** Latencies in ms by route, with when each request ended (to line them up with events). */
export class Latencies {
  private readonly samples = new Map<string, { at: number; ms: number }[]>();
  readonly slow: { at: number; route: string; ms: number }[] = [];
  /** Requests that got no answer (the connection closed or reset), by route. */
  readonly errors = new Map<string, string[]>();

  add(route: string, ms: number): void {
    const list = this.samples.get(route) ?? [];
    const at = performance.now();
    list.push({ at, ms });
    this.samples.set(route, list);
    if (ms > 50) this.slow.push({ at, route, ms });
  }

  routes(): string[] {
    return [...this.samples.keys()];
  }

  /** `leaveOut(from, to)` drops the requests it is true for (sent at `from`, answered at `to`). */
  summary(
    route: string,
    leaveOut: (from: number, to: number) => boolean = () => false,
  ): { count: number; p50: number; p99: number } {
    const sorted = (this.samples.get(route) ?? [])
      .filter((sample) => !leaveOut(sample.at - sample.ms, sample.at))
      .map((sample) => sample.ms)
      .sort((a, b) => a - b);
    return { count: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
  }
}

/** The nearest-rank percentile of an ascending list. */
function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/**
 * Times `call`. A request that gets no answer at all (its connection closed or reset) is
 * counted in `lat.errors` and yields undefined, so one lost connection does not end the run;
 * every answer PIE gives is timed, and one with an unexpected status still throws.
 */
async function timed<T>(
  lat: Latencies,
  route: string,
  call: () => Promise<T>,
): Promise<T | undefined> {
  const started = performance.now();
  try {
    const result = await call();
    lat.add(route, performance.now() - started);
    return result;
  } catch (error) {
    if (!lostConnection(error)) throw error;
    lat.errors.set(route, [...(lat.errors.get(route) ?? []), String(error)]);
    return undefined;
  }
}

function lostConnection(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('UND_ERR_') || code.startsWith('ECONN'));
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
): Promise<number> {
  let next = 0;
  let created = 0;
  const loop = async () => {
    while (next < count) {
      const path = target.runPaths[next++ % target.runPaths.length]!;
      if (await timed(lat, 'run_job', () => pie.expect(202, 'POST', path, {}))) created += 1;
    }
  };
  await Promise.all(Array.from({ length: connections }, loop));
  return created;
}

/**
 * One claim, timed into `lat` when `timeEmpty` or it got jobs; the jobs it got (none when its
 * connection was lost, counted as an error).
 */
async function claim(
  pie: PieClient,
  target: Target,
  lat: Latencies,
  options: { worker: string; maxJobs: number; waitMs: number; timeEmpty: boolean },
): Promise<ClaimedJob[]> {
  const body = {
    worker_id: options.worker,
    max_jobs: options.maxJobs,
    wait_ms: options.waitMs,
    lease_s: 300,
  };
  const started = performance.now();
  const answer = await timed(new Latencies(), 'claim', () =>
    pie.expect<ClaimAnswer>(200, 'POST', target.claimPath, body),
  );
  if (answer === undefined) {
    lat.errors.set('claim', [...(lat.errors.get('claim') ?? []), 'connection lost']);
    return [];
  }
  if (answer.jobs.length > 0 || options.timeEmpty) lat.add('claim', performance.now() - started);
  return answer.jobs;
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
      const jobs = await claim(pie, target, lat, {
        worker: `bench-worker-${index}`,
        maxJobs: options.maxJobs,
        waitMs: 100,
        timeEmpty: false,
      });
      // A completion that got no answer is counted as done: its job stays leased.
      await Promise.all(jobs.map((job) => complete(pie, job, lat)));
      completed += jobs.length;
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
      const jobs = await claim(pie, target, lat, {
        worker: `bench-load-worker-${index}`,
        maxJobs: 20,
        waitMs: 0,
        timeEmpty: true,
      });
      await Promise.all(jobs.map((job) => complete(pie, job, lat)));
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
