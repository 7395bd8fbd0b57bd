import type { FastifyBaseLogger } from 'fastify';
import type { Metrics } from '../metrics.js';
import type { Database, Queryable } from './database.js';

/**
 * The tables whose rows PIE updates or deletes: a job's row is rewritten as it is claimed,
 * handed over and finished (three dead versions a job), and idempotency keys expire. The
 * others change when an operator changes them.
 */
export const CHURNING_TABLES = ['jobs', 'idempotency_keys'] as const;

/** A vacuum slower than this is logged as a warning (on PGlite, the process stood still). */
const SLOW_VACUUM_MS = 500;

/**
 * Whether nothing else vacuums this database: PGlite runs no autovacuum, and a PostgreSQL
 * server may have it turned off (`autovacuum = off`, as on some CI and test servers).
 */
export async function needsOwnVacuum(db: Database): Promise<boolean> {
  if (db.backend === 'pglite') return true;
  const { rows } = await db.query<{ on: boolean }>(
    `select current_setting('autovacuum')::boolean as on`,
  );
  return rows[0]?.on !== true;
}

export interface Vacuuming {
  /** Stops the schedule and waits for a vacuum under way (call before closing the database). */
  stop(): Promise<void>;
}

/**
 * PostgreSQL's autovacuum reclaims the row versions that updates and deletes leave behind.
 * Where none runs, the database grows by every dead version, and worse, queries that walk an
 * index step over every dead entry in it: the dispatcher's claim reads the queue index
 * (`jobs_push_ready`) from its oldest end, where the entries of every job ever claimed pile
 * up (on PGlite, 0.6 → 3.3 ms a claim over 22,000 jobs; docs/DECISIONS.md has the figures).
 *
 * So where `needsOwnVacuum`, `pie serve` vacuums the churning tables itself, every
 * `intervalMs`, one vacuum after another (never two at once). On PGlite, VACUUM runs on the
 * database's thread, which is Node's, so nothing else runs meanwhile; vacuuming often keeps
 * each one short, as it then has few pages to clean (the visibility map lets it skip the
 * rest). Each vacuum's duration goes to `pie_vacuum_seconds`. A failed vacuum is logged and
 * retried on the next turn.
 */
export function startVacuuming(
  db: Queryable,
  intervalMs: number,
  log: Pick<FastifyBaseLogger, 'debug' | 'warn' | 'error'>,
  metrics: Metrics,
): Vacuuming {
  let stopped = false;
  let running: Promise<void> | undefined;
  let timer: NodeJS.Timeout | undefined;

  const vacuum = async () => {
    const started = performance.now();
    try {
      await db.exec(`vacuum ${CHURNING_TABLES.join(', ')}`);
      const ms = performance.now() - started;
      metrics.vacuumDuration.observe(ms / 1000);
      if (ms > SLOW_VACUUM_MS) log.warn(`vacuum took ${ms.toFixed(0)} ms`);
      else log.debug(`vacuum took ${ms.toFixed(1)} ms`);
    } catch (error) {
      log.error({ err: error }, 'vacuum failed; retrying on the next turn');
    }
  };
  const schedule = () => {
    timer = setTimeout(() => {
      running = vacuum().finally(() => {
        running = undefined;
        if (!stopped) schedule();
      });
    }, intervalMs);
    timer.unref();
  };
  schedule();

  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
