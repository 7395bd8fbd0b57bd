import { spawn, type ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { issueToken } from '../src/auth/token-issuer.js';
import { BUILT_CLI, buildOnce, startFlags } from '../scripts/npm-start.js';
import type { JwtConfig } from '../src/config/config.js';

/**
 * What the bench scenarios share: child processes that are always cleaned up, the throwaway
 * database, tokens, a small HTTP client and the load generator (bench/load.ts, in a child).
 */

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The HS256 secret every PIE child of this run is started with, so the bench mints tokens. */
export const JWT_SECRET = crypto.randomBytes(32).toString('base64url');

const JWT: JwtConfig = {
  secret: JWT_SECRET,
  jwksUrl: undefined,
  publicKeyPem: undefined,
  issuer: 'pie',
  audience: 'pie',
  algorithms: [],
};

export function mintAdminToken(): Promise<string> {
  return issueToken(new TextEncoder().encode(JWT_SECRET), JWT, {
    subject: 'bench',
    scopes: ['admin'],
    ttl: '6h',
  });
}

// ---------------------------------------------------------------------------------------------
// Clean-up: every child and every database is registered as soon as it exists, and released
// in reverse order on the normal path, on failure and on Ctrl-C alike.

type CleanupStep = () => Promise<void>;
const cleanupSteps: CleanupStep[] = [];
const children = new Set<ChildProcess>();

export function onCleanup(step: CleanupStep): void {
  cleanupSteps.push(step);
}

let cleaning: Promise<void> | undefined;

/**
 * Runs every registered step once, newest first; a failing step does not stop the rest. The
 * normal path and a signal handler may both call it: they share one clean-up.
 */
export function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    while (cleanupSteps.length > 0) {
      const step = cleanupSteps.pop()!;
      await step().catch((error: unknown) => {
        process.stderr.write(`clean-up: ${String(error)}\n`);
      });
    }
  })();
  return cleaning;
}

/** Last resort when the orchestrator itself exits: no child outlives it. */
export function killChildrenNow(): void {
  for (const child of children) child.kill('SIGKILL');
}

/** A node child running a TypeScript file of the repository through tsx. */
export function spawnNode(
  args: string[],
  env: NodeJS.ProcessEnv,
  nodeFlags: string[] = [],
): ChildProcess {
  // TypeScript runs through tsx; PIE itself runs as `npm start` runs it, built to dist/.
  const loader = args[0]?.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const child = spawn(process.execPath, [...nodeFlags, ...loader, ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export interface ServerChild {
  url: string;
  pid: number;
  child: ChildProcess;
  output: () => string;
  /** SIGTERM, then SIGKILL after 10 s; resolves once the process is gone. */
  stop: () => Promise<void>;
}

/**
 * Starts a server child and resolves once its output matches `ready` (group 1: its URL).
 * The child is stopped by the clean-up even if it never becomes ready.
 */
export function startServerChild(
  args: string[],
  env: NodeJS.ProcessEnv,
  ready: RegExp,
  nodeFlags: string[] = [],
): Promise<ServerChild> {
  const child = spawnNode(args, env, nodeFlags);
  let output = '';
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
    })();
    return stopping;
  };
  onCleanup(stop);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`${args.join(' ')} did not start within 60 s:\n${output}`));
    }, 60_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const url = ready.exec(output)?.[1];
      if (url !== undefined) {
        clearTimeout(timer);
        resolve({ url, pid: child.pid!, child, output: () => output, stop });
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`${args.join(' ')} exited with ${child.exitCode}:\n${output}`));
    });
  });
}

/**
 * `pie serve` as an operator runs it, with only the settings given here: port 0, warn-level
 * logs and the run's JWT secret. Resolves once it prints its URL.
 */
export async function startPie(settings: Record<string, string>): Promise<ServerChild> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'],
    HOME: process.env['HOME'],
    PIE_PORT: '0',
    PIE_LOG_LEVEL: 'warn',
    PIE_JWT_SECRET: JWT_SECRET,
    // The bench measures the stack's throughput from one client, which the per-client rate
    // limit exists to stop. Its run-job load leaves every job queued (no worker serves it), a
    // backlog that a fast run could take past the open-jobs quota's 100,000: no quota either.
    PIE_RATE_LIMIT_RPS: '0',
    PIE_QUOTA_OPEN_JOBS: '0',
    ...settings,
  };
  // PIE_BENCH_PROFILE=dir: each `pie serve` writes a CPU profile there when it stops.
  const profileDir = process.env['PIE_BENCH_PROFILE'];
  const profile = profileDir ? ['--cpu-prof', `--cpu-prof-dir=${path.resolve(profileDir)}`] : [];
  await buildOnce();
  const pie = await startServerChild(
    [BUILT_CLI, 'serve'],
    env,
    /PIE is serving at (http:\/\/\S+)[\s\S]*API reference/,
    [...startFlags(), ...profile],
  );
  return pie;
}

// ---------------------------------------------------------------------------------------------
// The throwaway PostgreSQL database.

export const DEFAULT_ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/test';

async function adminQuery(adminUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

/**
 * Creates `pie_bench_<pid>` (or `pie_bench_<pid>_<suffix>`; dropped by the clean-up) and returns
 * its connection string.
 */
export async function createBenchDatabase(adminUrl: string, suffix?: string): Promise<string> {
  const name = `pie_bench_${process.pid}${suffix === undefined ? '' : `_${suffix}`}`;
  await adminQuery(adminUrl, `drop database if exists ${name} with (force)`);
  await adminQuery(adminUrl, `create database ${name}`);
  onCleanup(() => adminQuery(adminUrl, `drop database if exists ${name} with (force)`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Runs `work` with one short-lived connection to `databaseUrl`. */
export async function withClient<T>(
  databaseUrl: string,
  work: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP against PIE.

export interface ApiAnswer {
  status: number;
  body: unknown;
}

export async function api(
  baseUrl: string,
  token: string,
  method: string,
  route: string,
  body?: unknown,
): Promise<ApiAnswer> {
  const response = await fetch(baseUrl + route, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text === '' ? undefined : (JSON.parse(text) as unknown) };
}

/** A call that must answer 2xx; anything else stops the scenario with PIE's answer. */
export async function apiOk(
  baseUrl: string,
  token: string,
  method: string,
  route: string,
  body?: unknown,
): Promise<unknown> {
  const answer = await api(baseUrl, token, method, route, body);
  if (answer.status < 200 || answer.status > 299) {
    throw new Error(`${method} ${route} answered ${answer.status}: ${JSON.stringify(answer.body)}`);
  }
  return answer.body;
}

/** Runs `calls` at most `width` at a time. */
export async function inBatches<T>(
  items: readonly T[],
  width: number,
  call: (item: T) => Promise<unknown>,
): Promise<void> {
  for (let i = 0; i < items.length; i += width) {
    await Promise.all(items.slice(i, i + width).map(call));
  }
}

// ---------------------------------------------------------------------------------------------
// The load generator, in its own process (bench/load.ts) so it does not share PIE's CPU time
// or the orchestrator's event loop.

export interface LoadOptions {
  /** Origin, e.g. http://127.0.0.1:40000 */
  url: string;
  connections: number;
  durationS: number;
  /** An unmeasured run before the measured one, with the same requests. */
  warmupS: number;
  method: 'GET' | 'POST' | 'PUT';
  headers: Record<string, string>;
  body?: string;
  /** Each connection goes through these paths in turn, round and round. */
  paths: string[];
}

/** What bench/load.ts prints: the parts of autocannon's result the bench reads. */
export interface LoadResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
  requests: { average: number; total: number; sent: number };
  latency: { p50: number; p90: number; p99: number; average: number; max: number };
  statusCodeStats?: Record<string, { count?: number }>;
}

export function runLoad(options: LoadOptions): Promise<LoadResult> {
  const child = spawnNode(['bench/load.ts', JSON.stringify(options)], {
    PATH: process.env['PATH'],
    HOME: process.env['HOME'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      if (code !== 0) {
        reject(new Error(`bench/load.ts exited with ${code}:\n${stderr}`));
        return;
      }
      try {
        resolve(JSON.parse(stdout) as LoadResult);
      } catch (error) {
        reject(
          new Error(`bench/load.ts printed no result (${String(error)}):\n${stdout}${stderr}`),
        );
      }
    });
  });
}

/** Every answer that was not a 2xx: non-2xx responses, connection errors and timeouts. */
export function failedRequests(result: LoadResult): number {
  return result.non2xx + result.errors;
}

export function describeLoad(result: LoadResult): string {
  const codes = Object.entries(result.statusCodeStats ?? {})
    .map(([code, stat]) => `${code}×${stat.count ?? 0}`)
    .join(' ');
  return (
    `${result.requests.average.toFixed(0)} req/s, p50 ${result.latency.p50} ms, ` +
    `p99 ${result.latency.p99} ms, ${result.requests.total} answers (${codes}), ` +
    `${result.errors} errors`
  );
}
