import { performance } from 'node:perf_hooks';
import type { BenchContext } from '../types.js';
import { logCost, type WindowCost } from './cycle-cost.js';

/**
 * The terms every side of the cycle scenario runs on (PIE, pg-boss batched, graphile-worker),
 * declared once, and the measuring window and loops they share. BENCHMARKS.md, "The cycle at
 * equal terms", describes what each side does with them.
 */
export const TERMS = {
  /** Producer loops; each creates ONE job per call and awaits it before the next. */
  producers: 16,
  /** Consumer loops, each fetching a batch, running it and completing it together. */
  consumers: 4,
  /** Jobs per fetch (PIE's claim `max_jobs`, pg-boss's `batchSize`, graphile's local queue). */
  batch: 50,
  /** Connections to PostgreSQL on each side (`pie serve`'s own pool is 20 too). */
  pool: 20,
} as const;

/** The terms as one line, printed in the bench's log. */
export function describeTerms(w: Window): string {
  return (
    `${TERMS.producers} producers (one job per call), ${TERMS.consumers} consumers fetching ` +
    `${TERMS.batch} jobs at a time and completing each fetch together, pool ` +
    `${TERMS.pool}, noop work, ${w.warmupSeconds} s warm-up, ${w.seconds} s window`
  );
}

export interface Window {
  /** Completions from here on count (after the warm-up). */
  from: number;
  /** Producers and consumers stop here; later completions do not count. */
  until: number;
  seconds: number;
  warmupSeconds: number;
}

/** A window starting after the warm-up from now: 1 s and 5 s quick, 2 s and 20 s full. */
export function measureWindow(ctx: BenchContext): Window {
  const warmupMs = ctx.quick ? 1000 : 2000;
  const measureMs = ctx.quick ? 5000 : 20_000;
  const from = performance.now() + warmupMs;
  return {
    from,
    until: from + measureMs,
    seconds: measureMs / 1000,
    warmupSeconds: warmupMs / 1000,
  };
}

export const inWindow = (w: Window, at: number) => at >= w.from && at < w.until;

/** Resolves at `at` (a `performance.now()` time), at once if it has passed. */
export function waitUntil(at: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, at - performance.now())));
}

/**
 * The loops of one side, each running until the window ends. The first failure stops them all
 * (at their next turn) and is thrown once every loop has stopped, so none is left running.
 */
export class Loops {
  private failure: { error: unknown } | undefined;
  private readonly pending: Promise<void>[] = [];

  constructor(private readonly w: Window) {}

  readonly running = () => this.failure === undefined && performance.now() < this.w.until;

  start(count: number, loop: (index: number) => Promise<void>) {
    for (let i = 0; i < count; i++) {
      this.pending.push(
        loop(i).catch((error: unknown) => {
          this.failure ??= { error };
        }),
      );
    }
  }

  async done(): Promise<void> {
    await Promise.all(this.pending);
    if (this.failure !== undefined) throw this.failure.error;
  }
}

/** What one side of the scenario measured. */
export interface SideResult {
  /** Jobs completed in the window, per second. */
  jobsPerS: number;
  /** Jobs created in all (warm-up, window and the producers' last calls). */
  created: number;
  /** Jobs completed in all. */
  completed: number;
  /** What the window cost, per job completed in it. */
  cost: WindowCost;
}

/**
 * The progress line of a side: its rate, and created, completed and left queued, which say
 * whether the producers or the consumers were the limit (a backlog: the consumers). In a full
 * run's later rounds a side may first complete the few jobs its previous round left queued.
 * Then its cost line.
 */
export function logSide(ctx: BenchContext, label: string, result: SideResult): void {
  const left = result.created - result.completed;
  ctx.log(
    `cycle: ${label}: ${result.jobsPerS.toFixed(0)} jobs/s completed in the window ` +
      `(${result.created} created, ${result.completed} completed, ` +
      (left >= 0
        ? `${left} left queued)`
        : `${-left} of them left queued by this side's previous round)`),
  );
  logCost(ctx, label, result.cost);
}
