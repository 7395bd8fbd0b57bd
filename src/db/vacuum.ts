import type { Database, Queryable } from './database.js';

/**
 * The tables whose rows PIE updates or deletes: a job's row is rewritten as it is claimed,
 * handed over and finished (three dead versions a job), and idempotency keys expire. The
 * others change when an operator changes them.
 */
export const CHURNING_TABLES = ['jobs', 'idempotency_keys'] as const;

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

/** Vacuums the churning tables, in one statement. */
export function vacuumChurningTables(db: Queryable): Promise<void> {
  return db.exec(`vacuum ${CHURNING_TABLES.join(', ')}`);
}
