import { PGlite } from '@electric-sql/pglite';
import type { Database, Queryable, QueryResult } from './database.js';

/** Opens the embedded database in `dataDir`, or in memory when `dataDir` is undefined (tests). */
export async function openPgliteDatabase(
  dataDir: string | undefined,
  options: { onClose?: () => void } = {},
): Promise<Database> {
  const pglite = await PGlite.create(dataDir === undefined ? {} : { dataDir });
  return new PgliteDatabase(pglite, options.onClose);
}

class PgliteDatabase implements Database {
  readonly backend = 'pglite' as const;

  constructor(
    private readonly pglite: PGlite,
    private readonly onClose: (() => void) | undefined,
  ) {}

  async query<Row>(text: string, values?: readonly unknown[]): Promise<QueryResult<Row>> {
    const result = await this.pglite.query<Row>(text, values as unknown[] | undefined);
    return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
  }

  async exec(script: string): Promise<void> {
    await this.pglite.exec(script);
  }

  // PGlite is one connection: its transaction() holds a mutex so other queries wait their turn.
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.pglite.transaction((tx) =>
      work({
        query: async <Row>(text: string, values?: readonly unknown[]) => {
          const result = await tx.query<Row>(text, values as unknown[] | undefined);
          return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
        },
        exec: async (script: string) => {
          await tx.exec(script);
        },
      }),
    );
  }

  async listen(
    channel: string,
    onNotify: (payload: string | undefined) => void,
  ): Promise<() => Promise<void>> {
    const unlisten = await this.pglite.listen(channel, onNotify);
    return () => unlisten();
  }

  async close(): Promise<void> {
    await this.pglite.close();
    this.onClose?.();
  }
}
