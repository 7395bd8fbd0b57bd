import type { FastifyBaseLogger } from 'fastify';
import type { Queryable } from '../db/database.js';
import { TableStatistics, vacuumChurningTables } from '../db/vacuum.js';
import type { Metrics } from '../observability/metrics.js';
import type { BackgroundService } from './background-service.js';

/** A vacuum slower than this is logged as a warning (on PGlite, the process stood still). */
const SLOW_VACUUM_MS = 500;

/**
 * PostgreSQL's autovacuum reclaims the row versions that updates and deletes leave behind.
 * Where none runs, the database grows by every dead version, and worse, queries that walk an
 * index step over every dead entry in it: the dispatcher's claim reads the queue index
 * (`jobs_push_ready`) from its oldest end, where the entries of every job ever claimed pile
 * up (on PGlite, 0.6 → 3.3 ms a claim over 22,000 jobs; docs/OPERATIONS.md has the figures).
 *
 * So where `needsOwnVacuum`, `pie serve` vacuums the churning tables itself, every
 * `intervalMs`, one vacuum after another (never two at once). On PGlite, VACUUM runs on the
 * database's thread, which is Node's, so nothing else runs meanwhile; vacuuming often keeps
 * each one short, as it then has few pages to clean (the visibility map lets it skip the
 * rest). Each vacuum's duration goes to `pie_vacuum_seconds`. A failed vacuum is logged and
 * retried on the next turn. After each vacuum, the tables whose statistics went stale are
 * analyzed too (`TableStatistics`), the other half of autovacuum's work.
 */
export class VacuumService implements BackgroundService {
  readonly name = 'vacuum';
  private stopped = false;
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly statistics = new TableStatistics();

  constructor(
    private readonly db: Queryable,
    private readonly intervalMs: number,
    private readonly log: Pick<FastifyBaseLogger, 'debug' | 'warn' | 'error'>,
    private readonly metrics: Metrics,
  ) {}

  start(): void {
    this.schedule();
  }

  /** Stops the schedule and waits for a vacuum under way (call before closing the database). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  // Each vacuum is scheduled when the last one ends, so two never overlap.
  private schedule(): void {
    this.timer = setTimeout(() => {
      this.running = this.vacuum().finally(() => {
        this.running = undefined;
        if (!this.stopped) this.schedule();
      });
    }, this.intervalMs);
    this.timer.unref();
  }

  private async vacuum(): Promise<void> {
    const started = performance.now();
    try {
      await vacuumChurningTables(this.db);
      const ms = performance.now() - started;
      this.metrics.vacuumDuration.observe(ms / 1000);
      if (ms > SLOW_VACUUM_MS) this.log.warn(`vacuum took ${ms.toFixed(0)} ms`);
      else this.log.debug(`vacuum took ${ms.toFixed(1)} ms`);
    } catch (error) {
      this.log.error({ err: error }, 'vacuum failed; retrying on the next turn');
      return;
    }
    const analyzeStarted = performance.now();
    try {
      const analyzed = await this.statistics.refresh(this.db);
      const ms = performance.now() - analyzeStarted;
      if (analyzed.length > 0) {
        const message = `analyze of ${analyzed.join(', ')} took ${ms.toFixed(0)} ms`;
        if (ms > SLOW_VACUUM_MS) this.log.warn(message);
        else this.log.debug(message);
      }
    } catch (error) {
      this.log.error({ err: error }, 'analyze failed; retrying on the next turn');
    }
  }
}

/** Starts vacuuming `db` every `intervalMs`; `stop()` ends it. */
export function startVacuuming(
  db: Queryable,
  intervalMs: number,
  log: Pick<FastifyBaseLogger, 'debug' | 'warn' | 'error'>,
  metrics: Metrics,
): VacuumService {
  const service = new VacuumService(db, intervalMs, log, metrics);
  service.start();
  return service;
}
