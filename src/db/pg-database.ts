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

export async function openPostgresDatabase(connectionString: string): Promise<Database> {
  const pool = new pg.Pool({ connectionString, types, max: 20 });
  // An idle client whose server went away emits 'error'; without a listener that kills Node.
  pool.on('error', () => undefined);
  await pool.query('select 1');
  return new PostgresDatabase(pool, connectionString);
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
    const client = await this.pool.connect();
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
      await client.query('rollback').catch(() => undefined);
      throw error;
    } finally {
      client.release();
    }
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
 * drops it reconnects with backoff, then reports `undefined` so callers look for work they
 * may have missed.
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
    const client = new pg.Client({ connectionString: this.connectionString });
    client.on('notification', (message) => {
      if (message.channel === this.channel) this.onNotify(message.payload);
    });
    client.on('error', () => this.reconnect(1000));
    await client.connect();
    await client.query(`listen ${pg.Client.prototype.escapeIdentifier(this.channel)}`);
    this.client = client;
  }

  private reconnect(delayMs: number): void {
    if (this.stopped || this.retryTimer !== undefined) return;
    const old = this.client;
    this.client = undefined;
    old?.end().catch(() => undefined);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.start().then(
        () => this.onNotify(undefined),
        () => this.reconnect(Math.min(delayMs * 2, 30_000)),
      );
    }, delayMs);
    this.retryTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    await this.client?.end().catch(() => undefined);
  }
}

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
