import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import { html } from './ui.js';

// The throughput chart of the overview and of a domain's page: the `throughput` of
// GET .../stats (one bucket per minute, the last hour), as lines per status.

const SERIES = [
  { status: 'queued', label: 'queued (created or retried)', stroke: '#1a56a8' },
  { status: 'success', label: 'success', stroke: '#2a7d46' },
  { status: 'failure', label: 'failure', stroke: '#b3261e' },
  { status: 'cancelled', label: 'cancelled', stroke: '#8a8a8a' },
];

/**
 * Adds up several answers' throughput minute by minute (a client's domains, or the clients on
 * the overview); answers read a moment apart may start a minute apart, so the last hour of
 * minutes any of them has is kept.
 */
export function sumThroughput(throughputs) {
  const byMinute = new Map();
  for (const { buckets } of throughputs) {
    for (const bucket of buckets) {
      const sum = byMinute.get(bucket.at) ?? { at: bucket.at };
      for (const { status } of SERIES) sum[status] = (sum[status] ?? 0) + bucket[status];
      byMinute.set(bucket.at, sum);
    }
  }
  const buckets = [...byMinute.values()].sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
  return { bucket_s: 60, buckets: buckets.slice(-60) };
}

export function ThroughputChart({ throughput, height = 220, label }) {
  const box = useRef();
  const empty = throughput.buckets.length === 0;
  useEffect(() => {
    if (empty) return undefined;
    const { buckets, bucket_s: bucketS } = throughput;
    const xs = buckets.map((bucket) => Date.parse(bucket.at) / 1000);
    const plot = new uPlot(
      {
        width: Math.min(760, box.current.clientWidth || 760),
        height,
        series: [
          {},
          ...SERIES.map(({ label: name, stroke }) => ({ label: name, stroke, width: 2 })),
        ],
        axes: [{}, { label: `jobs per ${bucketS / 60} min` }],
      },
      [xs, ...SERIES.map(({ status }) => buckets.map((bucket) => bucket[status] ?? 0))],
      box.current,
    );
    return () => plot.destroy();
  }, [throughput, height]);
  if (empty) return html`<p class="muted">Nothing to chart.</p>`;
  return html`<div class="chart" ref=${box} aria-label=${label}></div>`;
}
