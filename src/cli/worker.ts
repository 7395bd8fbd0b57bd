import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadOrCreateJwtSecret, usesSharedSecret } from '../auth/jwt-secret.js';
import { issueToken } from '../auth/token-issuer.js';
import { ConfigError, type Config } from '../config/config.js';
import { deliverCommand } from '../dispatch/handlers/command.handler.js';
import type { DeliveryOutcome, Envelope, JobError } from '../domain/delivery.js';

/**
 * `pie worker`: the reference pull worker (SPEC section 5). It claims jobs of one model
 * version, runs a local command per job exactly as the `command` handler does, keeps each
 * job's lease alive with heartbeats, and posts the result to the job's callback.
 */

export interface WorkerOptions {
  url: string;
  model: string;
  version: string;
  workerId: string;
  concurrency: number;
  leaseS: number;
  waitMs: number;
  once: boolean;
  command: string;
  args: string[];
}

type Env = Record<string, string | undefined>;

/** Reads the command line; throws ConfigError with a message naming the bad option. */
export function parseWorkerArgs(
  argv: string[],
  env: Env,
  server: Pick<Config, 'host' | 'port'>,
): WorkerOptions {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: 'string' },
      version: { type: 'string' },
      url: { type: 'string' },
      'worker-id': { type: 'string' },
      concurrency: { type: 'string', default: '1' },
      lease: { type: 'string', default: '60' },
      wait: { type: 'string', default: '20000' },
      once: { type: 'boolean', default: false },
    },
  });
  const [command, ...args] = positionals;
  if (values.model === undefined || values.model === '')
    throw new ConfigError('--model is required');
  if (values.version === undefined || values.version === '') {
    throw new ConfigError('--version is required');
  }
  if (command === undefined || command === '') {
    throw new ConfigError('give the command to run per job after "--", e.g. -- node model.mjs');
  }
  const url = values.url ?? nonEmpty(env['PIE_URL']) ?? defaultUrl(server);
  try {
    new URL(url);
  } catch {
    throw new ConfigError(`--url must be an absolute URL, got "${url}"`);
  }
  return {
    url: url.replace(/\/+$/, ''),
    model: values.model,
    version: values.version,
    workerId: values['worker-id'] ?? `${os.hostname()}-${process.pid}`,
    concurrency: integerOption('--concurrency', values.concurrency, 1, 100),
    leaseS: integerOption('--lease', values.lease, 5, 3600),
    waitMs: integerOption('--wait', values.wait, 0, 30_000),
    once: values.once,
    command,
    args,
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === '' ? undefined : trimmed;
}

function defaultUrl({ host, port }: Pick<Config, 'host' | 'port'>): string {
  // A server listening on every address is reachable on loopback.
  const reachable = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}

function integerOption(name: string, raw: string, min: number, max: number): number {
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

/** `pie worker ...`: parses, finds a token, runs until SIGINT/SIGTERM (or one round). */
export async function workerCommand(config: Config, argv: string[]): Promise<number> {
  const options = parseWorkerArgs(argv, process.env, config);
  const token = workerToken(config, options);
  const stop = new AbortController();
  const force = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (!stop.signal.aborted) {
      log(`${signal}: no new claims; waiting for running jobs (again to stop them)`);
      stop.abort();
    } else {
      log(`${signal}: stopping running jobs; PIE retries them when their lease expires`);
      force.abort();
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await runWorker(options, token, { stop: stop.signal, force: force.signal });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** Gives the bearer token for claims; a minted one is renewed before it expires. */
export type TokenSource = () => Promise<string>;

function workerToken(config: Config, options: WorkerOptions): TokenSource {
  const given = nonEmpty(process.env['PIE_TOKEN']);
  if (given !== undefined) return () => Promise.resolve(given);
  // Only a secret the server can know: creating a fresh one here would mint useless tokens.
  const secretKnown =
    usesSharedSecret(config) &&
    (config.jwt.secret !== undefined || fs.existsSync(path.join(config.dataDir, 'jwt-secret')));
  if (!secretKnown) {
    throw new ConfigError(
      `set PIE_TOKEN to a token with scope jobs:complete for model ${options.model} ` +
        `(npm run pie -- token --scope jobs:complete --model ${options.model} --ttl 12h)`,
    );
  }
  const secret = loadOrCreateJwtSecret(config);
  const renewAfterMs = 11 * 3600_000;
  let current: { token: Promise<string>; mintedAt: number } | undefined;
  return () => {
    if (current === undefined || Date.now() - current.mintedAt > renewAfterMs) {
      const token = issueToken(secret, config.jwt, {
        subject: `worker:${options.workerId}`,
        scopes: ['jobs:complete'],
        models: [options.model],
        ttl: '12h',
      });
      current = { token, mintedAt: Date.now() };
    }
    return current.token;
  };
}

export interface WorkerSignals {
  /** Stop claiming; jobs already running finish and report. */
  stop: AbortSignal;
  /** Stop running jobs too: their processes are killed and their leases left to expire. */
  force?: AbortSignal;
}

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30_000;

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

/** Runs one job: the command, heartbeats while it runs, then the completion. */
async function runJob(
  envelope: Envelope,
  options: WorkerOptions,
  force: AbortSignal | undefined,
): Promise<void> {
  const started = Date.now();
  const job = new AbortController();
  const deadlineMs = Date.parse(envelope.deadline) - Date.now();
  const deadline = setTimeout(
    () => job.abort({ code: 'timeout', message: 'the job passed its deadline' }),
    Number.isFinite(deadlineMs) ? Math.max(0, Math.min(deadlineMs, 2 ** 31 - 1)) : 2 ** 31 - 1,
  );
  const onForce = () => job.abort({ code: 'shutdown', message: 'the worker is stopping' });
  if (force?.aborted === true) onForce();
  else force?.addEventListener('abort', onForce, { once: true });
  const heartbeats = setInterval(
    () => void heartbeat(envelope, options.leaseS, job),
    (options.leaseS * 1000) / 3,
  );

  let outcome: DeliveryOutcome;
  try {
    outcome = await deliverCommand(
      envelope,
      { command: options.command, args: options.args },
      { signal: job.signal },
    );
  } finally {
    clearTimeout(deadline);
    clearInterval(heartbeats);
    force?.removeEventListener('abort', onForce);
  }

  const label = `job ${envelope.job_id} attempt ${envelope.attempt}`;
  const took = `${((Date.now() - started) / 1000).toFixed(1)}s`;
  const result = completionOf(outcome);
  if (result === undefined) {
    const why = outcome.kind === 'retry' ? outcome.error.message : outcome.kind;
    log(`${label}: stopped after ${took}, not reported (${why}); its lease decides what next`);
    return;
  }
  const reported = await complete(envelope, result);
  const summary =
    result.status === 'success'
      ? 'success'
      : `failure (${result.error?.code ?? 'error'}: ${result.error?.message ?? ''})`;
  log(`${label}: ${summary} in ${took}${reported ? '' : '; the completion was not accepted'}`);
}

interface Completion {
  status: 'success' | 'failure';
  output?: unknown;
  error?: JobError;
}

/** What to report for an outcome; undefined when the job should be left to its lease. */
function completionOf(outcome: DeliveryOutcome): Completion | undefined {
  switch (outcome.kind) {
    case 'finished':
      return { status: outcome.status, output: outcome.output, error: outcome.error };
    case 'fail':
      return { status: 'failure', error: outcome.error };
    case 'retry':
    case 'handed-over':
      return undefined;
  }
}

/**
 * Extends the lease. A 4xx (other than 408/429) means the attempt is no longer ours (cancelled,
 * lease lost, already final): the command is stopped and nothing is reported.
 */
async function heartbeat(envelope: Envelope, leaseS: number, job: AbortController) {
  try {
    const response = await postCallback(envelope.callback.heartbeat_url, envelope.callback.token, {
      attempt: envelope.attempt,
      lease_s: leaseS,
    });
    if (response.ok) return;
    const body = await readJson(response);
    const message = `${response.status} ${messageFromBody(body) ?? response.statusText}`;
    if (response.status >= 400 && response.status < 500 && ![408, 429].includes(response.status)) {
      log(`job ${envelope.job_id}: heartbeat refused (${message}); stopping the command`);
      job.abort({ code: 'lease_lost', message: `heartbeat refused: ${message}` });
    } else {
      log(`job ${envelope.job_id}: heartbeat failed (${message})`);
    }
  } catch (error) {
    log(`job ${envelope.job_id}: heartbeat failed (${messageOf(error)})`);
  }
}

const COMPLETE_TRIES = 6;

/** Posts the result, retrying network errors and 5xx with backoff; true when accepted. */
async function complete(envelope: Envelope, result: Completion): Promise<boolean> {
  const body = { ...result, attempt: envelope.attempt };
  let backoffMs = BACKOFF_MIN_MS;
  for (let attempt = 1; ; attempt++) {
    let problem: string;
    try {
      const response = await postCallback(envelope.callback.url, envelope.callback.token, body);
      if (response.ok) return true;
      const message = `${response.status} ${messageFromBody(await readJson(response)) ?? response.statusText}`;
      if (response.status < 500 && ![408, 429].includes(response.status)) {
        log(`job ${envelope.job_id}: completion refused (${message})`);
        return false;
      }
      problem = message;
    } catch (error) {
      problem = messageOf(error);
    }
    if (attempt === COMPLETE_TRIES) {
      log(`job ${envelope.job_id}: completion failed ${attempt} times (${problem}); giving up`);
      return false;
    }
    log(`job ${envelope.job_id}: completion failed (${problem}); retrying in ${backoffMs / 1000}s`);
    await sleep(backoffMs);
    backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
  }
}

function postCallback(url: string, token: string, body: unknown): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
}

async function readJson(response: Response): Promise<unknown> {
  try {
    return await response.json();
  } catch {
    return undefined;
  }
}

function messageFromBody(body: unknown): string | undefined {
  const message = isObject(body) ? body['message'] : undefined;
  return typeof message === 'string' ? message : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function messageOf(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // fetch wraps the interesting part (ECONNREFUSED...) in `cause`.
  const cause = error.cause instanceof Error ? `: ${error.cause.message}` : '';
  return `${error.message}${cause}`;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

function log(line: string): void {
  process.stderr.write(`pie worker: ${line}\n`);
}
