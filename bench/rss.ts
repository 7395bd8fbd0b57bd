import fs from 'node:fs';
import type { Metric } from './types.js';

/** The resident set size of process `pid` in MiB, from VmRSS in /proc/<pid>/status (Linux). */
export function readRssMb(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1];
  if (kb === undefined) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Math.round((Number(kb) / 1024) * 10) / 10;
}

/** `rss.<label>.mb` for `pid` now. */
export function rssMetric(label: string, pid: number): Metric {
  return { name: `rss.${label}.mb`, value: readRssMb(pid), unit: 'MB' };
}
