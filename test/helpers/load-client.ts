import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * A closed-loop HTTP load generator in its own process (test/helpers/load-client-process.ts),
 * so it shares neither the event loop of the test (which may be running a model handler) nor
 * PIE's. Unlike autocannon it finishes the requests in flight when the time is up, so its
 * counts can be compared one for one with what the server stored.
 */

export interface LoadClientOptions {
  /** e.g. http://127.0.0.1:40000 */
  origin: string;
  connections: number;
  durationMs: number;
  method: 'GET' | 'POST' | 'PUT';
  headers: Record<string, string>;
  body?: string;
  /** Connection i starts at paths[i % n] and goes round them in turn. */
  paths: string[];
  /** The status a request is expected to get (202 for a run-job); others are sampled. */
  acceptStatus: number;
  /** Keep `job_id` from every answer with acceptStatus. */
  collectJobIds: boolean;
}

export interface LoadClientResult {
  durationS: number;
  /** Requests that got an HTTP answer. */
  answers: number;
  requestsPerS: number;
  /** Answers by status code. */
  statuses: Record<string, number>;
  /** Requests that got no answer (refused, reset, timed out). */
  errors: number;
  errorSamples: string[];
  /** The first answers whose status was not acceptStatus. */
  unexpectedSamples: { status: number; body: string }[];
  /** From sending a request to reading the whole answer, over every answer. */
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  acceptedIds: string[];
}

const SCRIPT = fileURLToPath(new URL('./load-client-process.ts', import.meta.url));

/** A running load client: its process, and what it has printed so far. */
export interface LoadClientProcess {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
}

/** Starts the load client; `runLoadClient` waits for its result, a flood pauses and kills it. */
export function spawnLoadClient(options: LoadClientOptions): LoadClientProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, JSON.stringify(options)], {
    env: { PATH: process.env['PATH'], HOME: process.env['HOME'] },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return { child, stdout: () => stdout, stderr: () => stderr };
}

export function runLoadClient(options: LoadClientOptions): Promise<LoadClientResult> {
  const { child, stdout, stderr } = spawnLoadClient(options);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) {
        reject(new Error(`the load client exited with ${code}:\n${stderr()}`));
        return;
      }
      try {
        resolve(JSON.parse(stdout()) as LoadClientResult);
      } catch (error) {
        reject(new Error(`the load client printed no result (${String(error)}):\n${stderr()}`));
      }
    });
  });
}

/** `2xx×n 5xx×m` style, for diagnostics. */
export function describeStatuses(statuses: Record<string, number>): string {
  return Object.entries(statuses)
    .map(([status, n]) => `${status}×${n}`)
    .join(' ');
}
