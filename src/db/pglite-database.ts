import { fork } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import { PGlite } from '@electric-sql/pglite';
import type { Database, Queryable, QueryResult } from './database.js';
import { PgliteStatements } from './pglite-statements.js';

// PGlite's default shared_buffers (128 MB) is most of its memory. PIE's working set is the
// queued jobs and a few small tables; 16 MB keeps `pie serve` well under 300 MB of RSS.
const START_PARAMS = [...PGlite.defaultStartParams, '-c', 'shared_buffers=16MB'];

/**
 * How far V8 lets the old generation grow past what the last full collection kept, in percent,
 * in a process serving the embedded database. Left to itself V8 grows it up to fourfold: under
 * the bench's run-job load the old space held 115 MB of which 40 MB was live (a heap snapshot),
 * and RSS ended at 297 to 330 MB. At 25 % it ended at 255 to 271 MB, at the same rate
 * (docs/OPERATIONS.md, Memory). Set for the process, so only where the embedded database
 * serves: on PostgreSQL the cycle bench lost about 7 % to the extra collections (quick runs).
 */
const HEAP_GROWING_PERCENT = 25;

/** Opens the embedded database in `dataDir`, or in memory when `dataDir` is undefined (tests). */
export async function openPgliteDatabase(
  dataDir: string | undefined,
  options: {
    onClose?: () => void;
    /** Called when `dataDir` was new, with the migrations its creation applied. */
    onCreated?: (applied: string[]) => void;
    /**
     * An in-memory database starts as a copy of this data directory (a `dumpDataDir` tarball)
     * rather than from a new cluster, which PGlite takes seconds to create (the tests' template).
     */
    loadDataDir?: Blob;
  } = {},
): Promise<Database> {
  if (dataDir !== undefined && !fs.existsSync(path.join(dataDir, 'PG_VERSION'))) {
    const applied = await initdbInChild(dataDir);
    options.onCreated?.(applied);
  }
  // V8 reads this flag at each full collection, so setting it now takes effect from the next.
  if (dataDir !== undefined)
    v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
  const pglite = await PGlite.create({
    startParams: START_PARAMS,
    ...(dataDir !== undefined && { dataDir }),
    ...(dataDir === undefined &&
      options.loadDataDir !== undefined && {
        loadDataDir: options.loadDataDir,
      }),
  });
  return new PgliteDatabase(pglite, options.onClose);
}

/** The data directory of an embedded database as a tarball, for `loadDataDir`. */
export async function dumpPgliteDataDir(db: Database): Promise<Blob> {
  if (!(db instanceof PgliteDatabase)) throw new Error('not an embedded (PGlite) database');
  return db.dumpDataDir();
}

/**
 * Creates and migrates a new data directory in a short-lived child process (see
 * pglite-initdb); answers the migrations it applied.
 */
async function initdbInChild(dataDir: string): Promise<string[]> {
  // The child is this module's sibling, .ts under tsx and .js once built.
  const extension = path.extname(fileURLToPath(import.meta.url));
  const script = fileURLToPath(new URL(`./pglite-initdb${extension}`, import.meta.url));
  const child = fork(script, [dataDir], { execArgv: process.execArgv, stdio: 'inherit' });
  let applied: string[] = [];
  child.on('message', (message: { applied?: string[] }) => {
    applied = message.applied ?? applied;
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', resolve);
  });
  if (code !== 0) throw new Error(`creating the embedded database in ${dataDir} failed`);
  return applied;
}

class PgliteDatabase implements Database {
  readonly backend = 'pglite' as const;
  /** One database: lists read where everything else does. */
  readonly reads: Queryable = this;
  private readonly statements: PgliteStatements;

  constructor(
    private readonly pglite: PGlite,
    private readonly onClose: (() => void) | undefined,
  ) {
    this.statements = new PgliteStatements(pglite);
  }

  dumpDataDir(): Promise<Blob> {
    return this.pglite.dumpDataDir('none');
  }

  // The same locks PGlite's own query() takes: its transaction lock, so the statement cannot
  // land inside another caller's open transaction, then its query lock.
  async query<Row>(text: string, values: readonly unknown[] = []): Promise<QueryResult<Row>> {
    const result = await this.pglite._runExclusiveTransaction(() =>
      this.pglite._runExclusiveQuery(() => this.statements.run<Row>(text, values)),
    );
    await this.pglite.syncToFs();
    return { rows: result.rows, rowCount: result.affectedRows ?? result.rows.length };
  }

  async exec(script: string): Promise<void> {
    await this.pglite.exec(script);
  }

  // PGlite is one connection: its transaction() holds a mutex so other queries wait their turn.
  transaction<T>(work: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.pglite.transaction((tx) =>
      work({
        // Inside the transaction, which holds the transaction lock: the query lock only.
        query: async <Row>(text: string, values: readonly unknown[] = []) => {
          if (tx.closed) throw new Error('the transaction is closed');
          const result = await this.pglite._runExclusiveQuery(() =>
            this.statements.run<Row>(text, values),
          );
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
