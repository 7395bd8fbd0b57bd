import pg from 'pg';
import { isDatabaseUnavailable } from './connection-errors.js';
import { parseServerList, ServerFinder, type ServerAddress } from './postgres-servers.js';

// int8 (count(*), bigint columns) arrives as a string from `pg` but as a number from PGlite.
// Every int8 PIE stores fits in a double, so parse it as a number on both.
const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === 20
      ? (value: string) => Number(value)
      : (pg.types.getTypeParser(
          oid,
          format ?? 'text',
        ) as unknown)) as pg.CustomTypesConfig['getTypeParser'],
};

/** How long an idle pooled connection is kept before it is closed. */
const IDLE_CONNECTION_MS = 10 * 60_000;

/** The first and the longest pause between searches for the server to use after it was lost. */
const SEARCH_RETRY_MIN_MS = 100;
const SEARCH_RETRY_MAX_MS = 500;

/**
 * A `pg` pool on the server a connection string selects. With one server it is a plain pool.
 * With several (or a `target_session_attrs`) it connects to the one that fits, and when that
 * one is lost (connections fail, or it turned read-only) it searches the list again until one
 * fits, then moves to it: new connections go to the new server, and the old pool is closed
 * once its connections are handed back.
 */
export class ServerPool {
  private closed = false;
  private moving: Promise<void> | undefined;
  private readonly movedCallbacks = new Set<() => void>();

  private constructor(
    private pool: pg.Pool,
    private server: ServerAddress | undefined,
    private readonly finder: ServerFinder | undefined,
    private readonly plainConnectionString: string,
  ) {}

  static async open(connectionString: string): Promise<ServerPool> {
    const list = parseServerList(connectionString);
    if (list.servers.length <= 1 && list.attrs === 'any') {
      const pool = newPool(connectionString);
      await pool.query('select 1');
      return new ServerPool(pool, undefined, undefined, connectionString);
    }
    const finder = new ServerFinder(list);
    const server = await finder.find();
    const pool = newPool(list.connectionStringFor(server));
    await pool.query('select 1');
    return new ServerPool(pool, server, finder, connectionString);
  }

  /** The pool of the server in use now. */
  get current(): pg.Pool {
    return this.pool;
  }

  /** A connection string for the server in use now (for connections of their own: LISTEN). */
  connectionString(): string {
    if (this.finder === undefined || this.server === undefined) return this.plainConnectionString;
    return this.finder.list.connectionStringFor(this.server);
  }

  /** Calls `callback` whenever this pool moves to another server; returns how to stop it. */
  onMoved(callback: () => void): () => void {
    this.movedCallbacks.add(callback);
    return () => this.movedCallbacks.delete(callback);
  }

  /**
   * Told of every failed query. An error that says the server is gone or cannot write starts a
   * search for the server to use (one at a time); other errors are the query's own.
   */
  noticeFailure(error: unknown): void {
    if (this.finder === undefined || this.closed || this.moving !== undefined) return;
    if (!isDatabaseUnavailable(error)) return;
    this.moving = this.moveToFittingServer(this.finder).finally(() => {
      this.moving = undefined;
    });
  }

  private async moveToFittingServer(finder: ServerFinder): Promise<void> {
    let pauseMs = SEARCH_RETRY_MIN_MS;
    while (!this.closed) {
      try {
        const server = await finder.find();
        if (this.closed) return;
        if (server.host !== this.server?.host || server.port !== this.server.port) {
          const old = this.pool;
          this.pool = newPool(finder.list.connectionStringFor(server));
          this.server = server;
          // Connections checked out of the old pool finish their work (or fail) first.
          old.end().catch(() => undefined);
          for (const callback of this.movedCallbacks) callback();
        }
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, pauseMs).unref());
        pauseMs = Math.min(pauseMs * 2, SEARCH_RETRY_MAX_MS);
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.pool.end();
  }
}

function newPool(connectionString: string): pg.Pool {
  const pool = new pg.Pool({
    connectionString,
    types,
    max: 20,
    // Connections opened for a surge stay for the next one. A new connection costs the server a
    // process and cold caches (its first statements take tens of ms to plan), which it charged
    // to whichever requests came next: with pg's default of 10 s, a tenant's bursts every few
    // seconds kept reopening connections, and other tenants' requests waited behind them.
    idleTimeoutMillis: IDLE_CONNECTION_MS,
    // A server that does not answer (a partition rather than a refused port) fails requests
    // after this long with a 503, rather than holding them forever.
    connectionTimeoutMillis: 10_000,
    // Notice connections cut without a FIN (the server host vanished) instead of waiting on them.
    keepAlive: true,
    // PIE vacuums and analyzes jobs itself where the server runs no autovacuum. A manual VACUUM
    // runs flat out (no cost delay), and over a million deleted jobs its I/O put the completion
    // route's p99 over 50 ms; with autovacuum's own pacing (2 ms of rest per 200 units of work)
    // it takes longer and others wait less. Only VACUUM and ANALYZE read this setting. A
    // DATABASE_URL that sets `options` itself is left to say what it means.
    ...(!/[?&]options=/.test(connectionString) && { options: '-c vacuum_cost_delay=2' }),
  });
  // An idle client whose server went away emits 'error'; without a listener that kills Node.
  // The pool drops that client and connects afresh on the next query.
  pool.on('error', () => undefined);
  return pool;
}
