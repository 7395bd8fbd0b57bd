import pg from 'pg';
import type { Database, Queryable, QueryResult } from './database.js';

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

export async function openPostgresDatabase(connectionString: string): Promise<Database> {
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
  await pool.query('select 1');
  return new PostgresDatabase(pool, connectionString);
}

/** Whether a checked-out client broke, and the listener that would have heard it. */
interface BrokenState {
  error?: Error;
  listener: (cause: Error) => void;
}

class PostgresDatabase implements Database {
  readonly backend = 'postgres' as const;

  private readonly listeners = new Set<Listener>();

  constructor(
    private readonly pool: pg.Pool,
    private readonly connectionString: string,
  ) {}

  query<Row>(text: string, values?: readonly unknown[]): Promise<QueryResult<Row>> {
    return runQuery<Row>(this.pool, text, values);
  }

  async exec(script: string): Promise<void> {
    await this.pool.query(script);
  }

  async transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
    const { client, broken } = await this.checkOut();
    try {
      await client.query('begin');
      const result = await work({
        query: <Row>(text: string, values?: readonly unknown[]) =>
          runQuery<Row>(client, text, values),
        exec: async (script: string) => {
          await client.query(script);
        },
      });
      await client.query('commit');
      return result;
    } catch (error) {
      if (broken.error === undefined) await client.query('rollback').catch(() => undefined);
      throw error;
    } finally {
      client.off('error', broken.listener);
      // A broken client handed back with its error is discarded by the pool.
      client.release(broken.error);
    }
  }

  /**
   * A client of our own, listening for 'error' from the moment the pool hands it over. A
   * checked-out client has no listener of the pool's, and an error it emits with none ends the
   * process. That moment matters: a server shutting down sends a FATAL right behind the answer
   * that freed the connection, often in the same read, so the pool hands the connection to the
   * next waiter and the FATAL follows before an awaiting caller would run again. Hence the
   * callback form of connect(), in which the listener goes on synchronously.
   */
  private checkOut(): Promise<{ client: pg.PoolClient; broken: BrokenState }> {
    return new Promise((resolve, reject) => {
      this.pool.connect((error, client) => {
        if (error !== undefined || client === undefined) {
          reject(error ?? new Error('no client from the pool'));
          return;
        }
        const broken: BrokenState = {
          listener: (cause: Error) => {
            broken.error = cause;
          },
        };
        client.on('error', broken.listener);
        resolve({ client, broken });
      });
    });
  }

  async listen(
    channel: string,
    onNotify: (payload: string | undefined) => void,
  ): Promise<() => Promise<void>> {
    const listener = new Listener(this.connectionString, channel, onNotify);
    await listener.start();
    this.listeners.add(listener);
    return async () => {
      this.listeners.delete(listener);
      await listener.stop();
    };
  }

  async close(): Promise<void> {
    await Promise.all([...this.listeners].map((listener) => listener.stop()));
    await this.pool.end();
  }
}

/**
 * LISTEN needs a connection of its own, held for as long as it listens. When the connection
 * drops (the server restarted, the network broke) it reconnects with backoff, then reports
 * `undefined` so callers look for work they may have missed meanwhile.
 */
class Listener {
  private client: pg.Client | undefined;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly connectionString: string,
    private readonly channel: string,
    private readonly onNotify: (payload: string | undefined) => void,
  ) {}

  async start(): Promise<void> {
    const client = new pg.Client({ connectionString: this.connectionString, keepAlive: true });
    client.on('notification', (message) => {
      if (message.channel === this.channel) this.onNotify(message.payload);
    });
    // A broken connection may say so with 'error', with 'end', or both; either means reconnect.
    let dead = false;
    const lost = () => {
      dead = true;
      if (this.client === client) this.reconnect(RECONNECT_MIN_MS);
    };
    client.on('error', lost);
    client.on('end', lost);
    try {
      await client.connect();
      await client.query(`listen ${pg.Client.prototype.escapeIdentifier(this.channel)}`);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    if (this.stopped) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    // Lost between LISTEN and here: nobody was told, so start over.
    if (dead) this.reconnect(RECONNECT_MIN_MS);
  }

  private reconnect(delayMs: number): void {
    if (this.stopped || this.retryTimer !== undefined) return;
    const old = this.client;
    this.client = undefined;
    old?.end().catch(() => undefined);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.start().then(
        () => {
          if (!this.stopped) this.onNotify(undefined);
        },
        () => this.reconnect(Math.min(delayMs * 2, RECONNECT_MAX_MS)),
      );
    }, delayMs);
    this.retryTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}

// Short enough that wake-ups resume within seconds of the server coming back; the dispatcher's
// slow poll covers the gap meanwhile.
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 5000;

// Queries with parameters run as named prepared statements: each connection parses and plans
// one once, then reuses it. The name is derived from the text, so one text is one statement.
const statementNames = new Map<string, string>();

function statementName(text: string): string {
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `pie_${statementNames.size}`;
    statementNames.set(text, name);
  }
  return name;
}

async function runQuery<Row>(
  target: pg.Pool | pg.PoolClient,
  text: string,
  values: readonly unknown[] | undefined,
): Promise<QueryResult<Row>> {
  const result =
    values === undefined || values.length === 0
      ? await target.query(text)
      : await target.query({ name: statementName(text), text, values: values as unknown[] });
  return { rows: result.rows as Row[], rowCount: result.rowCount ?? 0 };
}
