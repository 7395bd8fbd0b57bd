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

/** Table size drift, as a share of the size at the last ANALYZE, that calls for another. */
const ANALYZE_DRIFT = 0.1;
/** ...plus this many rows, so that small tables are not analyzed on every few inserts. */
const ANALYZE_DRIFT_ROWS = 50;
/** A table is analyzed at least this often all the same: what its rows hold shifts too. */
const ANALYZE_AT_LEAST_EVERY_MS = 60 * 60 * 1000;

/**
 * Keeps the planner's statistics of the churning tables where nothing else does: ANALYZE is
 * autovacuum's other half. Without statistics PostgreSQL plans with guesses (a table of one
 * row): the jobs list walked a whole domain and sorted it (0.5 s over 200,000 jobs instead of
 * 0.5 ms), and joins of thousands of rows ran as nested loops. A table is analyzed when it
 * never was, on this process's first turn, when its size (`reltuples`, which each VACUUM
 * refreshes) moved by more than a tenth since this process last analyzed it, and at least
 * hourly. Autovacuum counts changed rows rather than size; PGlite keeps no such counts, so size
 * stands in. ANALYZE reads a fixed-size sample, so each costs about the same at any size.
 */
export class TableStatistics {
  /** Per table: its size when this process last analyzed it, and when. */
  private readonly analyzed = new Map<string, { tuples: number; at: number }>();

  /** Analyzes the churning tables whose statistics are stale; answers which it analyzed. */
  async refresh(db: Queryable, now = Date.now()): Promise<string[]> {
    const stale = (await this.sizes(db))
      .filter(({ table, tuples }) => {
        const last = this.analyzed.get(table);
        if (last === undefined || tuples < 0) return true; // never analyzed, here or at all
        const drift = ANALYZE_DRIFT_ROWS + ANALYZE_DRIFT * last.tuples;
        return Math.abs(tuples - last.tuples) > drift || now - last.at >= ANALYZE_AT_LEAST_EVERY_MS;
      })
      .map(({ table }) => table);
    if (stale.length === 0) return [];
    await db.exec(`analyze ${stale.join(', ')}`);
    for (const { table, tuples } of await this.sizes(db)) {
      if (stale.includes(table)) this.analyzed.set(table, { tuples, at: now });
    }
    return stale;
  }

  /** Each churning table's estimated row count (-1 until first vacuumed or analyzed). */
  private async sizes(db: Queryable): Promise<{ table: string; tuples: number }[]> {
    const { rows } = await db.query<{ table: string; tuples: number }>(
      `select t as table, c.reltuples::float8 as tuples
       from unnest($1::text[]) with ordinality as listed (t, n)
       join pg_class c on c.oid = to_regclass(t)
       order by n`,
      [CHURNING_TABLES],
    );
    return rows;
  }
}
