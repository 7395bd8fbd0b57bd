import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import type { LoadClientOptions, LoadClientResult } from './load-client.js';

/**
 * The load generator's own process (`node --import tsx test/helpers/load-client-process.ts
 * '<json LoadClientOptions>'`), started by `runLoadClient`: it prints one LoadClientResult as
 * JSON on stdout.
 *
 * Closed loop: each of `connections` keep-alive connections sends its next request as soon as
 * the previous answer is read. When the time is up a connection stops sending but reads the
 * answer it is waiting for, so every request that reached the server is counted (autocannon
 * destroys its connections with requests in flight, which would leave jobs in the database
 * whose 202 nobody counted).
 */

const raw = process.argv[2];
if (raw === undefined) {
  process.stderr.write("usage: node --import tsx test/helpers/load-client-process.ts '<json>'\n");
  process.exit(2);
}
const options = JSON.parse(raw) as LoadClientOptions;

const pool = new Pool(options.origin, {
  connections: options.connections,
  pipelining: 1,
  // Answers under load can take seconds; only a connection that stays silent this long fails.
  headersTimeout: 60_000,
  bodyTimeout: 60_000,
});

const statuses: Record<string, number> = {};
const acceptedIds: string[] = [];
const samples: { status: number; body: string }[] = [];
const errorSamples: string[] = [];
let latencies = new Float64Array(1 << 16);
let count = 0;
let errors = 0;

function recordLatency(ms: number) {
  if (count === latencies.length) {
    const bigger = new Float64Array(latencies.length * 2);
    bigger.set(latencies);
    latencies = bigger;
  }
  latencies[count++] = ms;
}

async function connectionLoop(index: number, until: number) {
  const { paths } = options;
  // Connections start at different paths so the load spreads over all of them at once.
  for (let turn = index; performance.now() < until; turn++) {
    const path = paths[turn % paths.length]!;
    const started = performance.now();
    try {
      const response = await pool.request({
        origin: options.origin,
        path,
        method: options.method,
        headers: options.headers,
        body: options.body,
      });
      const text = await response.body.text();
      recordLatency(performance.now() - started);
      const status = response.statusCode;
      statuses[status] = (statuses[status] ?? 0) + 1;
      if (status === options.acceptStatus && options.collectJobIds) {
        acceptedIds.push((JSON.parse(text) as { job_id: string }).job_id);
      } else if (status !== options.acceptStatus && samples.length < 10) {
        samples.push({ status, body: text.slice(0, 300) });
      }
    } catch (error) {
      errors += 1;
      if (errorSamples.length < 10) errorSamples.push(String(error));
      // A refused or reset connection: do not spin on it.
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

const started = performance.now();
const until = started + options.durationMs;
await Promise.all(Array.from({ length: options.connections }, (_, i) => connectionLoop(i, until)));
const durationS = (performance.now() - started) / 1000;
await pool.close();

const sorted = latencies.slice(0, count).sort();
const at = (p: number) =>
  count === 0 ? 0 : sorted[Math.min(count - 1, Math.ceil((p / 100) * count) - 1)]!;
let sum = 0;
for (const ms of sorted) sum += ms;

const result: LoadClientResult = {
  durationS,
  answers: count,
  requestsPerS: count / durationS,
  statuses,
  errors,
  errorSamples,
  unexpectedSamples: samples,
  latencyMs: {
    p50: at(50),
    p90: at(90),
    p99: at(99),
    max: count === 0 ? 0 : sorted[count - 1]!,
    mean: count === 0 ? 0 : sum / count,
  },
  acceptedIds,
};
process.stdout.write(`${JSON.stringify(result)}\n`);
