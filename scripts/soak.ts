import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { readRssMb } from '../bench/rss.js';
import {
  apiOk,
  cleanUp,
  inBatches,
  killChildrenNow,
  mintAdminToken,
  onCleanup,
  ROOT,
  startPie,
  withClient,
} from '../bench/setup.js';
import { scrapeMetrics } from '../test/helpers/scrape-metrics.js';
import {
  SLOW_HANDLER_SECRET,
  SlowCompletingHandler,
} from '../test/helpers/slow-completing-handler.js';

/**
 * `npm run soak [-- --minutes 10 --rate 50]`: a steady stream of job creations against one
 * `pie serve`, each job pushed to an http handler that takes 50 ms and completes it through
 * its callback, for `--minutes` (10 by default; not part of CI). Every 10 s it samples the RSS
 * of the `pie serve` process (VmRSS) and the dispatch latency of the jobs delivered in that
 * window: from the job's 202 reaching the producer to the handler receiving the job (clamped at
 * 0: the delivery can overtake the 202), the soak's producer and handler sharing one clock.
 *
 * Embedded PGlite in a temporary data folder by default; with DATABASE_URL (an admin
 * connection) a throwaway database `pie_soak_<pid>` on that server, dropped at the end.
 *
 * Verdict, after a warm-up of the first tenth of the windows (at least one):
 * - RSS slope: least squares over the second half of the windows, in MB per minute, of the RSS
 *   floor: the lowest of the 1 s samples over the last 2 minutes. V8 lets the old generation
 *   grow by tens of MB for a minute or more before a major collection gives it back; raw
 *   samples of that sawtooth give slopes of ±60 MB/min over short spans, while a leak raises
 *   the floor. Fails above --max-rss-slope (default 2 MB/min, 20 MB over ten minutes: a leak
 *   of about 700 bytes per job at 50 jobs/s).
 * - p99 drift: the median p99 of the last windows over the median p99 of the first windows
 *   after the warm-up (a fifth of the measured windows each, at least two); fails above
 *   --max-p99-drift (default 2×) when the p99 also grew by more than 5 ms (a 1 ms p99 that
 *   becomes 3 ms is noise, not drift).
 * - p50 drift: the same for the median, with 2 ms of slack, and judged on the worst stretch
 *   rather than the last: a cost that grows with the data and is later cut back (the claim
 *   query before PIE vacuumed PGlite: p50 1.5 → 10 → 2 ms) is drift too.
 * - Any creation that was not a 202, any completion PIE did not accept, or jobs left
 *   unfinished a minute after the producer stops also fail it.
 * Exits 0 when the verdict passes, 1 when it fails. Writes bench/results/soak.json.
 */

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    rate: { type: 'string', default: '50' },
    'max-rss-slope': { type: 'string', default: '2' },
    'max-p99-drift': { type: 'string', default: '2' },
  },
});

function positive(name: string, raw: string): number {
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) {
    process.stderr.write(`--${name} must be a positive number, got "${raw}"\n`);
    process.exit(2);
  }
  return value;
}

const MINUTES = positive('minutes', args.minutes);
const RATE = positive('rate', args.rate);
const MAX_RSS_SLOPE = positive('max-rss-slope', args['max-rss-slope']);
const MAX_P99_DRIFT = positive('max-p99-drift', args['max-p99-drift']);
const P99_SLACK_MS = 5;
const P50_SLACK_MS = 2;
const WINDOW_S = 10;
const RSS_FLOOR_S = 120;
const WORK_MS = 50;
const SERVICES = 10;
const DRAIN_MS = 60_000;
const CLIENT = 'soak';
const DOMAIN = `/v2/clients/${CLIENT}/domains/d1`;

const log = (line: string) => process.stderr.write(`[soak] ${line}\n`);

// ---------------------------------------------------------------------------------------------
// Statistics.

/** Nearest-rank percentile of an ascending list; NaN when it is empty. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  if (sorted.length === 0) return Number.NaN;
  return Number.isInteger(mid) ? (sorted[mid - 1]! + sorted[mid]!) / 2 : sorted[Math.floor(mid)]!;
}

/** The least-squares slope of y over x. */
function slope(points: readonly { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((sum, p) => sum + p.x, 0) / n;
  const my = points.reduce((sum, p) => sum + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

// ---------------------------------------------------------------------------------------------
// The run.

interface Window {
  index: number;
  /** Seconds since the producer started, at the end of the window. */
  at_s: number;
  /** RSS at the end of the window. */
  rss_mb: number;
  /** The lowest RSS sampled (every second) over the last RSS_FLOOR_S seconds. */
  rss_floor_mb: number;
  created: number;
  completed: number;
  delivered: number;
  /** Dispatch latency of the jobs delivered in this window. */
  p50_ms: number;
  p99_ms: number;
  /** Jobs created but not yet completed, at the end of the window. */
  open: number;
  /** Creations in this window that did not get a 202. */
  errors: number;
}

/** Where PIE keeps its data, cleaned up at the end. */
async function database(): Promise<{ settings: Record<string, string>; backend: string }> {
  const adminUrl = process.env['DATABASE_URL'];
  if (adminUrl === undefined || adminUrl === '') {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pie-soak-'));
    onCleanup(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
    return { settings: { PIE_DATA_DIR: dataDir }, backend: 'pglite' };
  }
  const name = `pie_soak_${process.pid}`;
  const drop = () =>
    withClient(adminUrl, async (c) => {
      await c.query(`drop database if exists ${name} with (force)`);
    });
  await drop();
  await withClient(adminUrl, async (c) => {
    await c.query(`create database ${name}`);
  });
  onCleanup(drop);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pie-soak-'));
  onCleanup(async () => fs.rmSync(dataDir, { recursive: true, force: true }));
  return {
    settings: { DATABASE_URL: url.toString(), PIE_DATA_DIR: dataDir },
    backend: 'postgres',
  };
}

async function setUpTenant(url: string, token: string, handlerUrl: string): Promise<string[]> {
  await apiOk(url, token, 'PUT', `/v2/clients/${CLIENT}`, { name: 'soak' });
  await apiOk(url, token, 'PUT', DOMAIN, {});
  await apiOk(url, token, 'PUT', '/v2/models/soak-model', {});
  await apiOk(url, token, 'PUT', '/v2/models/soak-model/versions/1.0.0', {
    features: [{ name: 'route', type: 'string', required: true }],
    handler: { type: 'http', url: handlerUrl, secret: SLOW_HANDLER_SECRET },
  });
  const ids = Array.from({ length: SERVICES }, (_, i) => `s${i}`);
  await inBatches(ids, 10, (id) =>
    apiOk(url, token, 'PUT', `${DOMAIN}/services/${id}`, { provided_features: { route: id } }),
  );
  await apiOk(url, token, 'PUT', `${DOMAIN}/assignments/default`, {
    model_id: 'soak-model',
    model_version: '1.0.0',
  });
  return ids.map((id) => `${DOMAIN}/service/${id}/assignments/default/jobs`);
}

async function run(): Promise<number> {
  const { settings, backend } = await database();
  // Latencies wait here until both ends of a job are known, whichever comes first.
  const acceptedAt = new Map<string, number>();
  const receivedAt = new Map<string, number>();
  let windowLatencies: number[] = [];
  const measure = (accepted: number, received: number) =>
    windowLatencies.push(Math.max(0, received - accepted));

  const handler = new SlowCompletingHandler(SLOW_HANDLER_SECRET, {
    workMs: WORK_MS,
    onDelivery(envelope, at) {
      if (envelope.attempt !== 1) return;
      const accepted = acceptedAt.get(envelope.job_id);
      if (accepted === undefined) receivedAt.set(envelope.job_id, at);
      else {
        acceptedAt.delete(envelope.job_id);
        measure(accepted, at);
      }
    },
  });
  await handler.start();
  onCleanup(() => handler.close());

  // One steady client well under any limit: the limits are off, as in the bench, so that a
  // --rate above the default rate limit measures PIE rather than its 429s.
  const pie = await startPie({
    ...settings,
    PIE_HTTP_ALLOW_HOSTS: '127.0.0.1',
    PIE_RATE_LIMIT_RPS: '0',
    PIE_QUOTA_OPEN_JOBS: '0',
    // To compare PIE's own vacuum settings (0 turns them off).
    ...(process.env['PIE_VACUUM_S'] !== undefined && {
      PIE_VACUUM_S: process.env['PIE_VACUUM_S'],
    }),
  });
  const token = await mintAdminToken();
  const paths = await setUpTenant(pie.url, token, handler.url);
  log(
    `${backend}: ${RATE} jobs/s for ${MINUTES} min against pie serve (pid ${pie.pid}), ` +
      `RSS at start ${readRssMb(pie.pid)} MB`,
  );

  const pool = new Pool(pie.url, { connections: 16 });
  onCleanup(() => pool.close());
  let created = 0;
  let errors = 0;
  const errorSamples: string[] = [];
  const runOne = async (index: number) => {
    try {
      const response = await pool.request({
        path: paths[index % paths.length]!,
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ job_type: 'inference', input: { n: index } }),
      });
      const text = await response.body.text();
      const at = performance.now();
      if (response.statusCode !== 202) {
        errors += 1;
        if (errorSamples.length < 10) errorSamples.push(`${response.statusCode} ${text}`);
        return;
      }
      created += 1;
      const { job_id: id } = JSON.parse(text) as { job_id: string };
      const received = receivedAt.get(id);
      if (received === undefined) acceptedAt.set(id, at);
      else {
        receivedAt.delete(id);
        measure(at, received);
      }
    } catch (error) {
      errors += 1;
      if (errorSamples.length < 10) errorSamples.push(String(error));
    }
  };

  // Open loop on a timer: job i is due at start + i / RATE, whatever the earlier ones are doing.
  const start = performance.now();
  const end = start + MINUTES * 60_000;
  const running = new Set<Promise<void>>();
  const windows: Window[] = [];
  let last = { created: 0, completed: 0, errors: 0 };
  const header =
    'window    t(s)   rss(MB)  floor(MB)  created  completed  open  p50(ms)  p99(ms)  errors';
  process.stdout.write(`${header}\n`);
  const sample = () => {
    const latencies = windowLatencies.sort((a, b) => a - b);
    windowLatencies = [];
    const w: Window = {
      index: windows.length + 1,
      at_s: Math.round((performance.now() - start) / 1000),
      rss_mb: readRssMb(pie.pid),
      rss_floor_mb: Math.min(...rssSamples.map((sample) => sample.mb)),
      created: created - last.created,
      completed: handler.completed - last.completed,
      delivered: latencies.length,
      p50_ms: Math.round(percentile(latencies, 50) * 100) / 100,
      p99_ms: Math.round(percentile(latencies, 99) * 100) / 100,
      open: created - handler.completed,
      errors: errors - last.errors,
    };
    last = { created, completed: handler.completed, errors };
    windows.push(w);
    process.stdout.write(
      `${String(w.index).padStart(6)}  ${String(w.at_s).padStart(6)}  ${w.rss_mb.toFixed(1).padStart(8)}` +
        `  ${w.rss_floor_mb.toFixed(1).padStart(9)}` +
        `  ${String(w.created).padStart(7)}  ${String(w.completed).padStart(9)}` +
        `  ${String(w.open).padStart(4)}  ${w.p50_ms.toFixed(2).padStart(7)}` +
        `  ${w.p99_ms.toFixed(2).padStart(7)}  ${String(w.errors).padStart(6)}\n`,
    );
  };
  // RSS every second; the window keeps the lowest of the last RSS_FLOOR_S seconds.
  const rssSamples: { at: number; mb: number }[] = [];
  const sampleRss = () => {
    const now = performance.now();
    rssSamples.push({ at: now, mb: readRssMb(pie.pid) });
    while (rssSamples[0]!.at < now - RSS_FLOOR_S * 1000) rssSamples.shift();
  };
  sampleRss();
  const rssSampler = setInterval(sampleRss, 1000);
  const sampler = setInterval(sample, WINDOW_S * 1000);
  onCleanup(async () => {
    clearInterval(sampler);
    clearInterval(rssSampler);
  });

  for (let i = 0; performance.now() < end && !interrupted; i++) {
    const wait = start + (i * 1000) / RATE - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const job = runOne(i);
    running.add(job);
    void job.finally(() => running.delete(job));
  }
  await Promise.all(running);
  clearInterval(sampler);
  clearInterval(rssSampler);
  // The timer's last tick can fall just after the end: the last window still counts.
  if (!interrupted && windows.length < Math.round((MINUTES * 60) / WINDOW_S)) sample();
  if (interrupted) return 130;

  log(`producer done: ${created} jobs created; waiting for the handler to complete them`);
  let unfinished = 0;
  try {
    await handler.waitForCompleted(created, { stallMs: DRAIN_MS, maxMs: DRAIN_MS });
  } catch {
    unfinished = created - handler.completed;
  }

  const vacuums = await ownVacuums(pie.url);
  if (vacuums !== undefined) {
    process.stdout.write(
      `\nPIE's own vacuums: ${vacuums.count}, ${vacuums.mean_ms.toFixed(1)} ms on average, ` +
        `each at most ${vacuums.at_most_ms} ms\n`,
    );
  }
  const result = verdict(windows, {
    errors,
    unfinished,
    completionFailures: Object.entries(handler.completionStatuses)
      .filter(([status]) => status !== '200')
      .reduce((sum, [, n]) => sum + n, handler.completionErrors),
  });
  for (const line of result.lines) process.stdout.write(`${line}\n`);
  if (errorSamples.length > 0) process.stdout.write(`errors: ${errorSamples.join('; ')}\n`);

  const resultsDir = path.join(ROOT, 'bench', 'results');
  fs.mkdirSync(resultsDir, { recursive: true });
  const file = path.join(resultsDir, 'soak.json');
  fs.writeFileSync(
    file,
    `${JSON.stringify(
      {
        machine: { cpus: os.cpus().length, node: process.version },
        backend,
        started_at: new Date(Date.now() - (performance.now() - start)).toISOString(),
        options: {
          minutes: MINUTES,
          rate_per_s: RATE,
          window_s: WINDOW_S,
          work_ms: WORK_MS,
          max_rss_slope_mb_per_min: MAX_RSS_SLOPE,
          max_p99_drift: MAX_P99_DRIFT,
          p99_slack_ms: P99_SLACK_MS,
        },
        jobs: { created, completed: handler.completed, errors, unfinished },
        own_vacuums: vacuums,
        windows,
        verdict: result.summary,
      },
      null,
      2,
    )}\n`,
  );
  log(`${path.relative(ROOT, file)} written`);
  return result.summary.passed ? 0 : 1;
}

function verdict(
  windows: Window[],
  counts: { errors: number; unfinished: number; completionFailures: number },
) {
  const warmup = Math.max(1, Math.floor(windows.length / 10));
  const measured = windows.slice(warmup);
  const secondHalf = windows.slice(Math.floor(windows.length / 2));
  const rssSlope = slope(secondHalf.map((w) => ({ x: w.at_s / 60, y: w.rss_floor_mb })));
  const rawSlope = slope(secondHalf.map((w) => ({ x: w.at_s / 60, y: w.rss_mb })));
  const k = Math.max(2, Math.floor(measured.length / 5));
  const withLatency = measured.filter((w) => !Number.isNaN(w.p99_ms));
  const firstP99 = median(withLatency.slice(0, k).map((w) => w.p99_ms));
  const lastP99 = median(withLatency.slice(-k).map((w) => w.p99_ms));
  const drift = lastP99 / firstP99;
  // The p50's worst stretch: the highest median over any k windows in a row after the first.
  const p50s = withLatency.map((w) => w.p50_ms);
  const firstP50 = median(p50s.slice(0, k));
  // Whole stretches only: a shorter one at the end would be one noisy window's median.
  const worstP50 = Math.max(
    ...Array.from({ length: p50s.length - k }, (_, i) => median(p50s.slice(i + 1, i + 1 + k))),
  );
  const p50Drift = worstP50 / firstP50;
  const enough = withLatency.length >= 2 * k && secondHalf.length >= 3;
  const failures: string[] = [];
  if (!enough) failures.push(`too few windows (${windows.length}) to judge; run longer`);
  if (rssSlope > MAX_RSS_SLOPE) {
    failures.push(`RSS grows ${rssSlope.toFixed(2)} MB/min (at most ${MAX_RSS_SLOPE})`);
  }
  if (drift > MAX_P99_DRIFT && lastP99 - firstP99 > P99_SLACK_MS) {
    failures.push(`p99 drifted ${drift.toFixed(2)}× (at most ${MAX_P99_DRIFT}×)`);
  }
  if (p50Drift > MAX_P99_DRIFT && worstP50 - firstP50 > P50_SLACK_MS) {
    failures.push(`p50 drifted ${p50Drift.toFixed(2)}× (at most ${MAX_P99_DRIFT}×)`);
  }
  if (counts.errors > 0) failures.push(`${counts.errors} creations were not a 202`);
  if (counts.completionFailures > 0) {
    failures.push(`${counts.completionFailures} completions were not accepted`);
  }
  if (counts.unfinished > 0) failures.push(`${counts.unfinished} jobs never completed`);
  const summary = {
    passed: failures.length === 0,
    warmup_windows: warmup,
    compared_windows: k,
    rss_slope_mb_per_min: Math.round(rssSlope * 1000) / 1000,
    raw_rss_slope_mb_per_min: Math.round(rawSlope * 1000) / 1000,
    rss_first_mb: windows[0]?.rss_mb,
    rss_last_mb: windows.at(-1)?.rss_mb,
    p99_first_ms: firstP99,
    p99_last_ms: lastP99,
    p99_drift: Math.round(drift * 1000) / 1000,
    p50_first_ms: firstP50,
    p50_worst_ms: worstP50,
    p50_drift: Math.round(p50Drift * 1000) / 1000,
    failures,
  };
  const lines = [
    '',
    `RSS ${summary.rss_first_mb} → ${summary.rss_last_mb} MB; slope of its floor over the ` +
      `second half ${rssSlope.toFixed(2)} MB/min (limit ${MAX_RSS_SLOPE}; raw samples ` +
      `${rawSlope.toFixed(2)} MB/min)`,
    `dispatch p99 ${firstP99.toFixed(2)} ms (first ${k} windows after ${warmup} of warm-up) → ` +
      `${lastP99.toFixed(2)} ms (last ${k}): ${drift.toFixed(2)}× (limit ${MAX_P99_DRIFT}×)`,
    `dispatch p50 ${firstP50.toFixed(2)} ms (first ${k} windows) → at worst ` +
      `${worstP50.toFixed(2)} ms (${k} windows in a row): ${p50Drift.toFixed(2)}×`,
    summary.passed
      ? 'verdict: flat'
      : `verdict: FAILED\n${failures.map((f) => `  - ${f}`).join('\n')}`,
  ];
  return { summary, lines };
}

/** What `pie serve` reports of its own vacuums; undefined where none ran (autovacuum on). */
async function ownVacuums(url: string) {
  const metrics = await scrapeMetrics(url);
  const count = metrics.get('pie_vacuum_seconds_count') ?? 0;
  if (count === 0) return undefined;
  const sum = metrics.get('pie_vacuum_seconds_sum')!;
  // The smallest bucket holding every vacuum bounds the slowest.
  const bound = [...metrics].find(
    ([series, value]) => series.startsWith('pie_vacuum_seconds_bucket{') && value === count,
  );
  const le = /le="([^"]+)"/.exec(bound?.[0] ?? '')?.[1] ?? '+Inf';
  return {
    count,
    mean_ms: (sum / count) * 1000,
    at_most_ms: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le) * 1000,
  };
}

let interrupted = false;
function onSignal(signal: NodeJS.Signals): void {
  if (interrupted) return;
  interrupted = true;
  log(`${signal}: stopping pie serve and cleaning up`);
  void cleanUp().finally(() => process.exit(130));
}
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);
process.on('exit', killChildrenNow);

let code = 1;
try {
  code = await run();
} catch (error) {
  log(`FAILED: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
} finally {
  await cleanUp();
}
process.exit(code);
