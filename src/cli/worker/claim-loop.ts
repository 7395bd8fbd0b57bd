import type { Envelope } from '../../domain/delivery.js';
import type { WorkerOptions } from './args.js';
import { BACKOFF_MAX_MS, BACKOFF_MIN_MS, sleep } from './backoff.js';
import { isObject, messageFromBody, messageOf, readJson } from './http-helpers.js';
import { log } from './log.js';
import { runJob } from './run-job.js';

/** Gives the bearer token for claims; a minted one is renewed before it expires. */
export type TokenSource = () => Promise<string>;

export interface WorkerSignals {
  /** Stop claiming; jobs already running finish and report. */
  stop: AbortSignal;
  /** Stop running jobs too: their processes are killed and their leases left to expire. */
  force?: AbortSignal;
}

/**
 * The claim loop. Returns 0 after a stop (or after one round with `once`), 1 when the server
 * refuses the worker (a 4xx on claim: wrong token, unknown model version) or, with `once`,
 * when the claim fails at all.
 */
export async function runWorker(
  options: WorkerOptions,
  token: TokenSource,
  signals: WorkerSignals,
): Promise<number> {
  const claimUrl =
    `${options.url}/v2/models/${encodeURIComponent(options.model)}` +
    `/versions/${encodeURIComponent(options.version)}/jobs/claim`;
  const running = new Set<Promise<void>>();
  let backoffMs = BACKOFF_MIN_MS;
  let exitCode = 0;
  log(
    `worker ${options.workerId} claiming ${options.model}@${options.version} from ${options.url} ` +
      `(concurrency ${options.concurrency})`,
  );

  while (!signals.stop.aborted) {
    const free = options.concurrency - running.size;
    if (free === 0) {
      await Promise.race(running);
      continue;
    }
    let jobs: Envelope[];
    try {
      jobs = await claimJobs(claimUrl, await token(), options, free, signals.stop);
      backoffMs = BACKOFF_MIN_MS;
    } catch (error) {
      // A claim aborted by the stop may have taken jobs the server now waits on; their leases
      // expire and they run again, which is cheaper than ignoring the stop for up to wait_ms.
      if (signals.stop.aborted) break;
      if (error instanceof ClaimRefused) {
        log(`claim refused: ${error.message}`);
        exitCode = 1;
        break;
      }
      if (options.once) {
        log(`claim failed: ${messageOf(error)}`);
        exitCode = 1;
        break;
      }
      log(`claim failed: ${messageOf(error)}; retrying in ${backoffMs / 1000}s`);
      await sleep(backoffMs, signals.stop);
      backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
      continue;
    }
    for (const envelope of jobs) {
      const job = runJob(envelope, options, signals.force)
        .catch((error: unknown) => log(`job ${envelope.job_id}: ${messageOf(error)}`))
        .finally(() => running.delete(job));
      running.add(job);
    }
    if (options.once) break;
  }
  await Promise.all(running);
  return exitCode;
}

/** A 4xx answer to a claim: retrying will not help. */
class ClaimRefused extends Error {}

async function claimJobs(
  claimUrl: string,
  bearer: string,
  options: WorkerOptions,
  maxJobs: number,
  stop: AbortSignal,
): Promise<Envelope[]> {
  const response = await fetch(claimUrl, {
    method: 'POST',
    headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      worker_id: options.workerId,
      max_jobs: maxJobs,
      wait_ms: options.waitMs,
      lease_s: options.leaseS,
    }),
    // A server that holds the long poll well past wait_ms is treated as a network failure.
    signal: AbortSignal.any([stop, AbortSignal.timeout(options.waitMs + 30_000)]),
  });
  const body = await readJson(response);
  if (!response.ok) {
    const message = `${response.status} ${messageFromBody(body) ?? response.statusText}`;
    if (response.status >= 400 && response.status < 500 && ![408, 429].includes(response.status)) {
      throw new ClaimRefused(message);
    }
    throw new Error(message);
  }
  const jobs = isObject(body) ? body['jobs'] : undefined;
  if (!Array.isArray(jobs)) throw new Error('the claim answer has no jobs list');
  return jobs as Envelope[];
}
