import { performance } from 'node:perf_hooks';
import { Latencies, mixedLoad, type Target } from './retained-ops.js';
import { type PieClient, sleep } from './tenant.js';

/**
 * Retention deleting the seeded backlog while the mixed load runs, against a `pie serve`
 * started with retention due after `warmupS`. Deletions are read from PIE's own counter
 * (`pie_retention_deleted_total`) every 250 ms; the load runs until every seeded job is gone
 * or `boundS` has passed. The rate runs from the last reading before the first deletion to the
 * last reading that saw one.
 */

export interface RetentionRun {
  deleted: number;
  seconds: number;
  lat: Latencies;
  /** PIE's own vacuums meanwhile (where nothing else vacuums): how many, and their seconds. */
  vacuums: { count: number; seconds: number };
  /**
   * Whether a request overlapped a vacuum of `jobs` as `vacuuming` saw it (from the reading
   * before one that saw it to the first that no longer did); always false without `vacuuming`.
   */
  duringVacuum: (from: number, to: number) => boolean;
  /** One line a second: jobs deleted, requests over 50 ms and the slowest. */
  timeline: string[];
}

export async function retentionUnderLoad(
  client: PieClient,
  target: Target,
  options: {
    seeded: number;
    boundS: number;
    runPerS: number;
    warmupS: number;
    /** Whether a vacuum of `jobs` is running now (PostgreSQL: pg_stat_progress_vacuum). */
    vacuuming?: () => Promise<boolean>;
  },
): Promise<RetentionRun> {
  const lat = new Latencies();
  const started = performance.now();
  const readings: { at: number; deleted: number; vacuuming: boolean }[] = [];
  let deleted = 0;
  let watching = true;
  let loading = true;
  const watch = (async () => {
    try {
      while (
        loading &&
        deleted < options.seeded &&
        performance.now() - started < options.boundS * 1000
      ) {
        await sleep(250);
        deleted = metric(await metricsText(client), 'pie_retention_deleted_total', 'jobs');
        const vacuuming = (await options.vacuuming?.()) ?? false;
        readings.push({ at: performance.now(), deleted, vacuuming });
      }
    } finally {
      watching = false;
    }
  })();
  // The process is new: the same load warms it (connections, prepared statements, caches)
  // until retention's first turn is due, unmeasured.
  const warm = () =>
    mixedLoad(
      client,
      target,
      options.runPerS,
      () => performance.now() > warmUntil,
      new Latencies(),
    );
  const warmUntil = started + options.warmupS * 1000;
  const load = warm()
    .then(() => mixedLoad(client, target, options.runPerS, () => !watching, lat))
    .finally(() => (loading = false));
  for (const settled of await Promise.allSettled([load, watch])) {
    if (settled.status === 'rejected') throw settled.reason;
  }
  const text = await metricsText(client);
  const windows = readings.flatMap((reading, i) =>
    reading.vacuuming
      ? [{ from: readings[i - 1]?.at ?? started, to: readings[i + 1]?.at ?? Infinity }]
      : [],
  );

  const first = readings.findIndex((reading) => reading.deleted > 0);
  const from = first <= 0 ? started : readings[first - 1]!.at;
  const last = readings.findIndex((reading) => reading.deleted === deleted);
  const seconds = first < 0 ? 0 : (readings[last]!.at - from) / 1000;
  return {
    deleted,
    seconds,
    lat,
    vacuums: {
      count: metric(text, 'pie_vacuum_seconds_count'),
      seconds: metric(text, 'pie_vacuum_seconds_sum'),
    },
    timeline: timeline(started, readings, lat),
    duringVacuum: (from, to) => windows.some((window) => from < window.to && to > window.from),
  };
}

function timeline(
  started: number,
  readings: { at: number; deleted: number; vacuuming: boolean }[],
  lat: Latencies,
): string[] {
  const lines: string[] = [];
  const end = readings.at(-1)?.at ?? started;
  let before = 0;
  for (let second = 0; started + second * 1000 < end; second++) {
    const [from, to] = [started + second * 1000, started + (second + 1) * 1000];
    const upTo = readings.filter((reading) => reading.at < to).at(-1)?.deleted ?? before;
    const slow = lat.slow.filter((request) => request.at >= from && request.at < to);
    const worst = slow.reduce((max, request) => (request.ms > max.ms ? request : max), {
      route: '',
      ms: 0,
    });
    const vacuum = readings.some((r) => r.vacuuming && r.at >= from && r.at < to);
    lines.push(
      `${String(second).padStart(3)} s: ${String(upTo - before).padStart(6)} deleted, ` +
        (vacuum ? 'vacuuming, ' : '') +
        `${slow.length} requests over 50 ms` +
        (slow.length > 0 ? ` (slowest ${worst.route} ${worst.ms.toFixed(0)} ms)` : ''),
    );
    before = upTo;
  }
  return lines;
}

async function metricsText(client: PieClient): Promise<string> {
  const response = await fetch(`${client.baseUrl}/metrics`);
  return response.text();
}

/** A counter's value in Prometheus text; `kind` picks the series with that label. */
function metric(text: string, name: string, kind?: string): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^(\w+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (match?.[1] !== name) continue;
    if (kind !== undefined && !(match[2] ?? '').includes(`kind="${kind}"`)) continue;
    return Number(match[3]);
  }
  return 0;
}
