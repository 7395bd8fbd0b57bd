import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Database, Queryable } from './database.js';

/**
 * The tables whose rows PIE updates or deletes: a job's row is rewritten as it is claimed,
 * handed over and finished (three dead versions a job), idempotency keys expire, each job event
 * is written, numbered (a second version) and deleted after PIE_EVENTS_RETENTION_S, the event
 * log's one row is rewritten by every sequencer turn, and the job statistics (migration 000017)
 * are updated every turn and their minutes deleted after two hours. Left alone on PGlite, which
 * has no autovacuum, the dead versions would stay for good: the event log alone leaves two per
 * job change. Vacuum reads only the pages that changed since the last one (the visibility map),
 * so a large, settled table costs little. The others change when an operator changes them.
 */
export const CHURNING_TABLES = [
  'jobs',
  'idempotency_keys',
  'job_events',
  'job_event_log',
  'job_counts',
  'job_activity',
] as const;

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

/**
 * Runs `script(table)` for each table, one script at a time with a turn of the event loop
 * between them. On PGlite one statement holds the only thread: requests that arrived meanwhile
 * take the database's lock before the next table does. As one statement, the six vacuums and
 * the analyzes after them stood still for 100 to 130 ms every turn of the tenant-fairness test
 * (a CPU profile of `pie serve`), which decided another tenant's p99.
 */
async function tableByTable(
  db: Queryable,
  tables: readonly string[],
  script: (table: string) => string,
): Promise<void> {
  for (const table of tables) {
    await db.exec(script(table));
    await nextTurn();
  }
}

/** Vacuums the churning tables, one statement each, letting other work run between them. */
export function vacuumChurningTables(db: Queryable): Promise<void> {
  return tableByTable(db, CHURNING_TABLES, (table) => `vacuum ${table}`);
}

/**
 * The statistics target of PIE's own ANALYZE for columns without one of their own
 * (PostgreSQL's default is 100). ANALYZE samples 300 rows per unit of the largest target among
 * a table's columns: 3,000 rows at 10, 30,000 at 100. Migration 000009 gave every column of
 * `jobs` a target of 10 (0 for payloads), but columns added later (`traceparent`) and the event
 * log's table had none, so the sample was 30,000 rows again. On PGlite ANALYZE runs on the
 * thread that serves HTTP: over 20,000 jobs `analyze jobs` took 103 to 110 ms that way, during
 * which every request waited, and 18 to 21 ms at 10 (`job_events`: 42 ms and 8 ms). A session
 * setting covers the columns to come as well.
 */
export const ANALYZE_STATISTICS_TARGET = 10;

/**
 * Analyzes `tables` at ANALYZE_STATISTICS_TARGET, one table per script, letting other work run
 * between them. Each script's two statements run as one implicit transaction: the setting ends
 * with it, and a failure rolls it all back and leaves the connection usable (an explicit BEGIN
 * would leave it inside a failed transaction, and PGlite has only the one).
 */
export function analyzeTables(db: Queryable, tables: readonly string[]): Promise<void> {
  return tableByTable(
    db,
    tables,
    (table) =>
      `set local default_statistics_target = ${ANALYZE_STATISTICS_TARGET}; analyze ${table}`,
  );
}

/**
 * A table is analyzed again once its size (`reltuples`) is this many times, or this share of,
 * its size at the last ANALYZE. The planner scales a table's statistics to its current size
 * (its pages now, times the rows per page sampled), so what goes stale as a table grows is only
 * what its rows hold, and doubling is often enough to follow that. Autovacuum's rule, a tenth
 * plus 50 rows, analyzed a growing table on every turn: on PGlite each `analyze jobs` stopped
 * every request for 20 to 60 ms over 8,000 jobs, every 10 s while the table grew.
 */
const ANALYZE_GROWTH = 2;
/**
 * ...and by at least this many rows. Small tables plan well with any statistics, and on PGlite
 * each ANALYZE stops every request: at 500 rows, `jobs` and `job_events`, growing from empty,
 * were analyzed 5 or 6 times during the tenant-fairness test's measurements, stops of 12 to
 * 42 ms, each of which could decide one of its rounds.
 */
const ANALYZE_DRIFT_ROWS = 5000;
/** A table is analyzed at least this often all the same: what its rows hold shifts too. */
const ANALYZE_AT_LEAST_EVERY_MS = 60 * 60 * 1000;

/**
 * Keeps the planner's statistics of the churning tables where nothing else does: ANALYZE is
 * autovacuum's other half. Without statistics PostgreSQL plans with guesses (a table of one
 * row): the jobs list walked a whole domain and sorted it (0.5 s over 200,000 jobs instead of
 * 0.5 ms), and joins of thousands of rows ran as nested loops. A table is analyzed when it
 * never was, when its size (`reltuples`, which each VACUUM refreshes) doubled or halved since
 * this process last analyzed it or first saw it (ANALYZE_GROWTH), and at least hourly.
 * Autovacuum counts changed rows rather than size; PGlite keeps no such counts, so size stands
 * in. ANALYZE reads a fixed-size sample, so each costs about the same at any size.
 */
export class TableStatistics {
  /** Per table: its size when this process last analyzed it, and when. */
  private readonly analyzed = new Map<string, { tuples: number; at: number }>();

  /** Analyzes the churning tables whose statistics are stale; answers which it analyzed. */
  async refresh(db: Queryable, now = Date.now()): Promise<string[]> {
    const stale: string[] = [];
    for (const { table, tuples, analyzed } of await this.sizes(db)) {
      const last = this.analyzed.get(table);
      if (!analyzed) stale.push(table);
      else if (last === undefined)
        this.analyzed.set(table, { tuples, at: now }); // first sight
      else if (resized(last.tuples, tuples) || now - last.at >= ANALYZE_AT_LEAST_EVERY_MS) {
        stale.push(table);
      }
    }
    if (stale.length === 0) return [];
    await analyzeTables(db, stale);
    for (const { table, tuples } of await this.sizes(db)) {
      if (stale.includes(table)) this.analyzed.set(table, { tuples, at: now });
    }
    return stale;
  }

  /**
   * Each churning table's estimated row count (`reltuples`, -1 until first vacuumed or
   * analyzed), and whether it was ever analyzed (by anyone: a table analyzed before this process
   * started is first taken as it is, not analyzed again at once).
   */
  private async sizes(
    db: Queryable,
  ): Promise<{ table: string; tuples: number; analyzed: boolean }[]> {
    const { rows } = await db.query<{ table: string; tuples: number; analyzed: boolean }>(
      `select t as table, c.reltuples::float8 as tuples,
         coalesce(s.last_analyze, s.last_autoanalyze) is not null as analyzed
       from unnest($1::text[]) with ordinality as listed (t, n)
       join pg_class c on c.oid = to_regclass(t)
       left join pg_stat_user_tables s on s.relid = c.oid
       order by n`,
      [CHURNING_TABLES],
    );
    return rows;
  }
}

/** Whether a table of `before` rows that now has `now` grew or shrank enough to analyze again. */
function resized(before: number, now: number): boolean {
  const larger = Math.max(before, now);
  const smaller = Math.max(0, Math.min(before, now));
  return larger - smaller > ANALYZE_DRIFT_ROWS && larger >= ANALYZE_GROWTH * smaller;
}
