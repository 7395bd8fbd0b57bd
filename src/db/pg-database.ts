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
  return new PostgresDatabase(pool);
}

class PostgresDatabase implements Database {
  readonly backend = 'postgres' as const;

  constructor(private readonly pool: pg.Pool) {}

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

  close(): Promise<void> {
    return this.pool.end();
  }
}

async function runQuery<Row>(
  target: pg.Pool | pg.PoolClient,
  text: string,
  values: readonly unknown[] | undefined,
): Promise<QueryResult<Row>> {
  const result = await target.query(text, values as unknown[] | undefined);
  return { rows: result.rows as Row[], rowCount: result.rowCount ?? 0 };
}
