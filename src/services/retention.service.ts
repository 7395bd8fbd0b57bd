import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyBaseLogger } from 'fastify';
import type { Database, Queryable } from '../db/database.js';
import type { Metrics } from '../observability/metrics.js';
import {
  deleteOldFinishedBatches,
  deleteOldFinishedJobs,
  deleteOldIdempotencyRecords,
  deleteOldJobActivity,
  tryRetentionLock,
} from '../repositories/retention.repository.js';
import { deleteOldJobEvents } from '../repositories/job-events.repository.js';
import type { BackgroundService } from './background-service.js';

/** How long an idempotency record is kept: the API promises replays for 24 hours. */
export const IDEMPOTENCY_MAX_AGE_S = 24 * 60 * 60;

/**
 * How long a minute of job activity (the stats routes' throughput, migration 000017) is kept:
 * the routes read the last 60 minutes; an hour more is margin, and is as cheap to keep.
 */
export const ACTIVITY_MAX_AGE_S = 2 * 60 * 60;

export interface RetentionOptions {
  /** Time between turns while there is no backlog. */
  intervalMs: number;
  /** Finished jobs older than this (by `finished_at`) are deleted; undefined keeps them all. */
  jobsMaxAgeS: number | undefined;
  /** Job events older than this are deleted (the horizon of Last-Event-ID); undefined keeps them. */
  eventsMaxAgeS?: number;
  /** Idempotency records older than this (by `created_at`) are deleted. */
  idempotencyMaxAgeS: number;
  /** Minutes of job activity older than this are deleted. */
  activityMaxAgeS: number;
  /** Rows one statement deletes at most. */
  batch: number;
  /** A turn starts no new batch once it has run this long. */
  budgetMs: number;
}

/**
 * 500 rows a statement: a few milliseconds on either backend, so a request waits at most that
 * long behind a batch (on PGlite, which runs on Node's thread, for the thread itself). Within a
 * turn each round of batches is followed by a rest as long as it took, and a turn lasts at most
 * 1 s; a turn that leaves a backlog is followed after a pause as long, so catching up deletes
 * for at most a quarter of the time.
 */
export const RETENTION_DEFAULTS = {
  batch: 500,
  budgetMs: 1000,
  idempotencyMaxAgeS: IDEMPOTENCY_MAX_AGE_S,
  activityMaxAgeS: ACTIVITY_MAX_AGE_S,
} as const;

type Kind = 'jobs' | 'batches' | 'idempotency' | 'events' | 'activity';

/** What one turn did: rows deleted by kind, and why it ended. */
export interface RetentionTurn {
  deleted: Record<Kind, number>;
  /** Another process held the retention lock: this turn deleted nothing more. */
  busy: boolean;
  /** The budget ran out (or the service stopped) with old rows left. */
  backlog: boolean;
}

/**
 * Deletes finished jobs and batches past their retention, idempotency records past 24 hours,
 * job events past theirs and minutes of job activity past 2 hours, in small batches, by one
 * process of the fleet at a time.
 *
 * Each batch is its own short transaction that first takes a transaction-scoped advisory lock
 * (`pg_try_advisory_xact_lock`) and gives up the turn when another process holds it. The lock
 * is per batch rather than a session lock held over the turn: the `Database` port lends pooled
 * connections only for a transaction, and a session lock lives as long as its connection unless
 * released explicitly, so a turn cut short could leave it held on a connection back in the
 * pool; a transaction's lock ends at its commit or rollback, whatever happens. Two processes
 * may take turns batch by batch, but never delete at the same time.
 *
 * Between batches the turn yields to the event loop, so requests that arrived meanwhile run
 * first; on PGlite a transaction also holds the database for everyone, so short ones matter.
 */
export class RetentionService implements BackgroundService {
  readonly name = 'retention';
  private stopped = false;
  private running: Promise<unknown> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly options: RetentionOptions;
  /** What each kind deletes in one batch; jobs only when they have a retention. */
  private readonly deleters = new Map<Kind, (tx: Queryable) => Promise<number>>();

  constructor(
    private readonly db: Database,
    options: Pick<RetentionOptions, 'intervalMs' | 'jobsMaxAgeS'> & Partial<RetentionOptions>,
    private readonly log: Pick<FastifyBaseLogger, 'debug' | 'error'>,
    private readonly metrics: Metrics,
  ) {
    this.options = { ...RETENTION_DEFAULTS, ...options };
    const { batch, jobsMaxAgeS, idempotencyMaxAgeS, eventsMaxAgeS, activityMaxAgeS } = this.options;
    this.deleters.set('idempotency', (tx) =>
      deleteOldIdempotencyRecords(tx, idempotencyMaxAgeS, batch),
    );
    this.deleters.set('activity', (tx) => deleteOldJobActivity(tx, activityMaxAgeS, batch));
    if (eventsMaxAgeS !== undefined) {
      this.deleters.set('events', (tx) => deleteOldJobEvents(tx, eventsMaxAgeS, batch));
    }
    if (jobsMaxAgeS !== undefined) {
      this.deleters.set('jobs', (tx) => deleteOldFinishedJobs(tx, jobsMaxAgeS, batch));
      this.deleters.set('batches', (tx) => deleteOldFinishedBatches(tx, jobsMaxAgeS, batch));
    }
  }

  start(): void {
    this.schedule(this.options.intervalMs);
  }

  /** Stops the schedule and waits for the batch under way (call before closing the database). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  /**
   * One turn: a batch of each kind in turn, until every kind comes back short, the budget is
   * spent, another process holds the lock, or the service stops.
   */
  async runOnce(): Promise<RetentionTurn> {
    const started = performance.now();
    const turn: RetentionTurn = {
      deleted: { jobs: 0, batches: 0, idempotency: 0, events: 0, activity: 0 },
      busy: false,
      backlog: false,
    };
    const pending = new Map(this.deleters);
    while (pending.size > 0) {
      const roundStarted = performance.now();
      for (const [kind, deleteBatch] of pending) {
        const deleted = await this.db.transaction(async (tx) =>
          (await tryRetentionLock(tx)) ? deleteBatch(tx) : undefined,
        );
        if (deleted === undefined) {
          turn.busy = true;
          this.log.debug('retention: another process holds the lock; skipping this turn');
          return turn;
        }
        turn.deleted[kind] += deleted;
        this.metrics.retentionDeleted.inc({ kind }, deleted);
        if (deleted < this.options.batch) pending.delete(kind);
      }
      if (
        pending.size > 0 &&
        (this.stopped || performance.now() - started >= this.options.budgetMs)
      ) {
        turn.backlog = true;
        break;
      }
      // Rest as long as the round took: requests that arrived meanwhile run first, and their
      // commits do not queue behind an unbroken stream of deletes (measured on PostgreSQL: the
      // completion route's p99 under load went over 50 ms while deleting flat out).
      await sleep(performance.now() - roundStarted);
    }
    const { jobs, idempotency } = turn.deleted;
    if (jobs + idempotency > 0 || turn.backlog) {
      this.log.debug(
        `retention deleted ${jobs} jobs and ${idempotency} idempotency records in ` +
          `${(performance.now() - started).toFixed(0)} ms${turn.backlog ? '; more remain' : ''}`,
      );
    }
    return turn;
  }

  // Each turn is scheduled when the last one ends, so two never overlap in one process. A
  // backlog is worked off in turns separated by a pause as long as the budget, not the interval.
  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => {
      const turn = this.runOnce().then(
        (result) => (result.backlog ? this.options.budgetMs : this.options.intervalMs),
        (error: unknown) => {
          this.log.error({ err: error }, 'retention failed; retrying on the next turn');
          return this.options.intervalMs;
        },
      );
      this.running = turn.then((nextDelayMs) => {
        this.running = undefined;
        if (!this.stopped) this.schedule(nextDelayMs);
      });
    }, delayMs);
    this.timer.unref();
  }
}
