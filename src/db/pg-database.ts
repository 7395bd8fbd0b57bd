import type pg from 'pg';
import { isDatabaseUnavailable } from './connection-errors.js';
import { sqlState, type Database, type Queryable, type QueryResult } from './database.js';
import { Listener } from './pg-listener.js';
import { ServerPool } from './pg-server-pool.js';

/**
 * A PostgreSQL server (or, with several hosts in `connectionString`, whichever of them fits its
 * `target_session_attrs`, followed through failovers). With `readConnectionString`, lists read
 * from that server (a replica) through `reads`.
 */
export async function openPostgresDatabase(
  connectionString: string,
  readConnectionString?: string,
): Promise<Database> {
  const primary = await ServerPool.open(connectionString);
  if (readConnectionString === undefined) return new PostgresDatabase(primary, undefined);
  try {
    return new PostgresDatabase(primary, await ServerPool.open(readConnectionString));
  } catch (error) {
    await primary.close();
    throw error;
  }
}

/** Whether a checked-out client broke, and the listener that would have heard it. */
interface BrokenState {
  error?: Error;
  listener: (cause: Error) => void;
}

class PostgresDatabase implements Database {
  readonly backend = 'postgres' as const;

  readonly reads: Queryable;
  private readonly listeners = new Set<Listener>();

  constructor(
    private readonly primary: ServerPool,
    private readonly replica: ServerPool | undefined,
  ) {
    this.reads =
      replica === undefined
        ? this
        : new ReplicaReads(
            {
              query: (text, values) => poolQuery(replica, text, values),
              exec: () => Promise.reject(new Error('scripts run on the primary, not on reads')),
            },
            this,
          );
  }

  query<Row>(text: string, values?: readonly unknown[]): Promise<QueryResult<Row>> {
    return poolQuery<Row>(this.primary, text, values);
  }

  async exec(script: string): Promise<void> {
    await this.primary.current.query(script).catch((error: unknown) => {
      this.primary.noticeFailure(error);
      throw error;
    });
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
      this.primary.noticeFailure(error);
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
      this.primary.current.connect((error, client) => {
        if (error !== undefined || client === undefined) {
          if (error !== undefined) this.primary.noticeFailure(error);
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
    const listener = new Listener(this.primary, channel, onNotify);
    await listener.start();
    this.listeners.add(listener);
    const unfollow = this.primary.onMoved(() => listener.moved());
    return async () => {
      unfollow();
      this.listeners.delete(listener);
      await listener.stop();
    };
  }

  async close(): Promise<void> {
    await Promise.all([...this.listeners].map((listener) => listener.stop()));
    await Promise.all([this.primary.close(), this.replica?.close()]);
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

/**
 * Lists read from the replica. While it cannot be reached they read from the primary instead:
 * a lost replica costs the primary some reads, not the lists themselves. So does a list the
 * standby cancelled because it conflicted with what it was replaying (a recovery conflict,
 * SQLSTATE 40001): the primary has no such conflict.
 */
export class ReplicaReads implements Queryable {
  constructor(
    private readonly replica: Queryable,
    private readonly primary: Queryable,
  ) {}

  async query<Row>(text: string, values?: readonly unknown[]): Promise<QueryResult<Row>> {
    try {
      return await this.replica.query<Row>(text, values);
    } catch (error) {
      if (!isDatabaseUnavailable(error) && sqlState(error) !== RECOVERY_CONFLICT) throw error;
      return this.primary.query<Row>(text, values);
    }
  }

  exec(): Promise<void> {
    return Promise.reject(new Error('scripts run on the primary, not on reads'));
  }
}

const RECOVERY_CONFLICT = '40001';

async function poolQuery<Row>(
  server: ServerPool,
  text: string,
  values: readonly unknown[] | undefined,
): Promise<QueryResult<Row>> {
  try {
    return await runQuery<Row>(server.current, text, values);
  } catch (error) {
    server.noticeFailure(error);
    throw error;
  }
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
