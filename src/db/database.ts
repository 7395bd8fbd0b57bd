/**
 * The one small port every repository talks to. Two adapters implement it: PGlite (embedded,
 * the default) and `pg` (a PostgreSQL server). The same SQL runs on both, so keep queries to
 * plain PostgreSQL and pass JSON values through `JSON.stringify` with an explicit `::jsonb` cast
 * (the `pg` driver would otherwise turn JS arrays into PostgreSQL arrays).
 */
export interface QueryResult<Row> {
  rows: Row[];
  rowCount: number;
}

export interface Queryable {
  query<Row = Record<string, unknown>>(
    text: string,
    values?: readonly unknown[],
  ): Promise<QueryResult<Row>>;
  /** Runs a multi-statement script without parameters (migrations). */
  exec(script: string): Promise<void>;
}

export type Backend = 'pglite' | 'postgres';

export interface Database extends Queryable {
  readonly backend: Backend;
  /**
   * Where lists and other reads that may lag a moment go: a replica when DATABASE_READ_URL names
   * one, else this database. Anything that must see its own writes reads through `query`.
   */
  readonly reads: Queryable;
  /** Runs `work` in one transaction: committed when it resolves, rolled back when it throws. */
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T>;
  /**
   * Calls `onNotify` for every NOTIFY on `channel`, and with `undefined` after a reconnect
   * (notifications may have been missed meanwhile). Resolves to a function that stops it.
   */
  listen(
    channel: string,
    onNotify: (payload: string | undefined) => void,
  ): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** The SQLSTATE of a PostgreSQL error, from either driver. */
export function sqlState(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    if (typeof error.code === 'string') return error.code;
  }
  return undefined;
}
