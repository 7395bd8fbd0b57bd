import type { FastifyBaseLogger } from 'fastify';
import { isDatabaseUnavailable } from '../db/connection-errors.js';

/** The longest pause between two tries while the database is unreachable. */
export const OUTAGE_BACKOFF_MAX_MS = 5000;

/**
 * What the background loops do while the database is unreachable: skip their turns with a
 * growing backoff (one warning per outage, not one error per tick) and resume by themselves
 * when it answers again. One is shared by the loops of a process, so that they pause and
 * resume together.
 */
export class OutageBackoff {
  private pausedUntil = 0;
  private failures = 0;

  constructor(
    private readonly log: Pick<FastifyBaseLogger, 'warn' | 'info' | 'error'>,
    /** What pauses, in the warning. */
    private readonly what = 'dispatch',
  ) {}

  /** Whether loops should skip this turn. */
  get paused(): boolean {
    return Date.now() < this.pausedUntil;
  }

  /** Something showed the database answering (a wake-up): end the backoff now. */
  resume(): void {
    this.pausedUntil = 0;
  }

  /** Logs a failed turn; a database outage pauses the loops with growing backoff. */
  failed(error: unknown, what: string): void {
    if (!isDatabaseUnavailable(error)) {
      this.log.error({ err: error }, `${what} failed; retrying on the next turn`);
      return;
    }
    this.failures += 1;
    const backoffMs = Math.min(250 * 2 ** this.failures, OUTAGE_BACKOFF_MAX_MS);
    this.pausedUntil = Date.now() + backoffMs;
    if (this.failures === 1) {
      this.log.warn(
        { err: error instanceof Error ? error.message : String(error) },
        `database unavailable: ${this.what} paused, retrying with backoff`,
      );
    }
  }

  /** A turn reached the database. */
  succeeded(): void {
    if (this.failures === 0) return;
    this.log.info(`database reachable again after ${this.failures} failed tries`);
    this.failures = 0;
    this.pausedUntil = 0;
  }
}
