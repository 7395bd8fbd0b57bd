import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { sqlState, type Backend, type Database } from '../../src/db/database.js';
import { migrate, readMigrations } from '../../src/db/migrate.js';
import { dumpPgliteDataDir, openPgliteDatabase } from '../../src/db/pglite-database.js';
import { openPostgresDatabase } from '../../src/db/pg-database.js';

/**
 * The backends every integration test runs on: the embedded PGlite always, and the PostgreSQL
 * server named by DATABASE_URL when it is set. Each test file gets its own migrated database:
 * an in-memory PGlite, or a fresh database on the server that is dropped afterwards.
 *
 * A migrated database is a copy of a template made once per set of migrations (TEMPLATE_KEY)
 * by running them: PGlite takes 4 to 5 s of CPU to create a cluster, and the suite opens about
 * a hundred, so copying a migrated one saves minutes of CI. The template is the migrations'
 * own result, so the copies are what `migrate` makes; tests of migrating open unmigrated ones.
 */
export interface TestBackend {
  name: Backend;
  /** A fresh database, migrated unless `migrated` is false. */
  open(options?: { migrated?: boolean }): Promise<TestDatabase>;
}

export interface TestDatabase {
  db: Database;
  /** A connection string for child processes, on the PostgreSQL backend. */
  url: string | undefined;
  dispose: () => Promise<void>;
}

export function testBackends(): TestBackend[] {
  const backends: TestBackend[] = [{ name: 'pglite', open: openPglite }];
  const serverUrl = process.env['DATABASE_URL'];
  if (serverUrl !== undefined && serverUrl !== '') {
    backends.push({ name: 'postgres', open: (options) => openServerDatabase(serverUrl, options) });
  }
  return backends;
}

/**
 * Names the migrations, the code that applies them and PGlite's version: a template made from
 * other ones is not used.
 */
const TEMPLATE_KEY = crypto
  .createHash('sha256')
  .update(JSON.stringify(readMigrations()))
  .update(fs.readFileSync(new URL('../../src/db/migrate.ts', import.meta.url)))
  .update(
    fs.readFileSync(
      new URL('../../node_modules/@electric-sql/pglite/package.json', import.meta.url),
    ),
  )
  .digest('hex')
  .slice(0, 16);

const TEMPLATES = os.tmpdir();
/** A migrated data folder, made the way `pie serve` makes its own (in a child process). */
const PGLITE_TEMPLATE_DIR = path.join(TEMPLATES, `pie-test-pglite-${TEMPLATE_KEY}.dir`);
/** The same folder as a `dumpDataDir` tarball, which an in-memory PGlite starts from. */
const PGLITE_TEMPLATE_TAR = path.join(TEMPLATES, `pie-test-pglite-${TEMPLATE_KEY}.tar`);

/**
 * Makes `target` once across the suite's processes: `make` builds it under a name of its own,
 * which is then renamed into place, so a process finds either none or a whole one (a process
 * that loses the race drops its own). Templates of other migrations (a checkout of another
 * commit) are removed once a new one is in place.
 */
async function makeOnce(target: string, make: (partial: string) => Promise<void>) {
  if (fs.existsSync(target)) return;
  const partial = `${target}.${process.pid}.${crypto.randomBytes(4).toString('hex')}`;
  await make(partial);
  try {
    await fs.promises.rename(partial, target);
  } catch {
    await fs.promises.rm(partial, { recursive: true, force: true });
  }
  for (const other of await fs.promises.readdir(TEMPLATES)) {
    const match = /^pie-test-pglite-([0-9a-f]{16})\.(tar|dir)$/.exec(other);
    if (match !== null && match[1] !== TEMPLATE_KEY) {
      await fs.promises.rm(path.join(TEMPLATES, other), { recursive: true, force: true });
    }
  }
}

let pgliteTemplates: Promise<void> | undefined;

/** Both PGlite templates, from one cluster creation: the tarball is dumped from the folder. */
function pgliteTemplatesMade(): Promise<void> {
  pgliteTemplates ??= (async () => {
    await makeOnce(PGLITE_TEMPLATE_DIR, async (partial) => {
      await (await openPgliteDatabase(partial)).close();
    });
    await makeOnce(PGLITE_TEMPLATE_TAR, async (partial) => {
      // Dumped from a copy: opening a data folder writes to it.
      const copy = `${partial}.dir`;
      await fs.promises.cp(PGLITE_TEMPLATE_DIR, copy, { recursive: true });
      const db = await openPgliteDatabase(copy);
      try {
        const dump = await dumpPgliteDataDir(db);
        await fs.promises.writeFile(partial, Buffer.from(await dump.arrayBuffer()));
      } finally {
        await db.close();
        await fs.promises.rm(copy, { recursive: true, force: true });
      }
    });
  })();
  return pgliteTemplates;
}

/**
 * Fills the new, empty data folder `dataDir` for a `pie serve` on the embedded database with a
 * copy of the migrated template; `pie serve` then skips the seconds that creating a cluster
 * takes. Tests of a first start leave their folder empty instead.
 */
export async function copyMigratedDataDir(dataDir: string): Promise<void> {
  await pgliteTemplatesMade();
  await fs.promises.cp(PGLITE_TEMPLATE_DIR, dataDir, { recursive: true });
}

let pgliteDump: Promise<Blob> | undefined;

function migratedPgliteDump(): Promise<Blob> {
  pgliteDump ??= pgliteTemplatesMade().then(
    async () => new Blob([await fs.promises.readFile(PGLITE_TEMPLATE_TAR)]),
  );
  return pgliteDump;
}

async function openPglite(options?: { migrated?: boolean }): Promise<TestDatabase> {
  const db =
    options?.migrated === false
      ? await openPgliteDatabase(undefined)
      : await openPgliteDatabase(undefined, { loadDataDir: await migratedPgliteDump() });
  return { db, url: undefined, dispose: () => db.close() };
}

const SERVER_TEMPLATE = `pie_test_template_${TEMPLATE_KEY}`;

/**
 * Creates `name` as a copy of the migrated template database, making the template first when
 * it is missing: migrated under a name of its own, then renamed into place (a process that
 * loses the race drops its own). Templates of other migrations are dropped as they are replaced.
 */
async function createMigratedServerDatabase(serverUrl: string, name: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await adminQuery(serverUrl, `create database ${name} template ${SERVER_TEMPLATE}`);
      return;
    } catch (error) {
      // 3D000: no template yet; 55006: another process is still renaming it into place.
      const code = sqlState(error);
      if ((code !== '3D000' && code !== '55006') || attempt > 5) throw error;
    }
    const building = `pie_test_building_${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
    await adminQuery(serverUrl, `create database ${building}`);
    const db = await openPostgresDatabase(databaseUrl(serverUrl, building));
    try {
      await migrate(db);
    } finally {
      await db.close();
    }
    try {
      await renameWhenClosed(serverUrl, building, SERVER_TEMPLATE);
      const stale = await adminQuery(
        serverUrl,
        `select datname from pg_database where datname like 'pie\\_test\\_template\\_%'
           and datname <> $1`,
        [SERVER_TEMPLATE],
      );
      for (const { datname } of stale) {
        await adminQuery(serverUrl, `drop database if exists ${datname as string}`).catch(
          () => undefined, // in use by a run of those migrations: it goes at a later run
        );
      }
    } catch {
      await adminQuery(serverUrl, `drop database if exists ${building} with (force)`);
    }
  }
}

/**
 * Renames a database once the server has ended the sessions just closed on it: a backend
 * exits a moment after its client said goodbye, and a rename waits for none (55006).
 */
async function renameWhenClosed(serverUrl: string, from: string, to: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await adminQuery(serverUrl, `alter database ${from} rename to ${to}`);
      return;
    } catch (error) {
      if (sqlState(error) !== '55006' || attempt >= 50) throw error;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

async function openServerDatabase(
  serverUrl: string,
  options?: { migrated?: boolean },
): Promise<TestDatabase> {
  const name = `pie_test_${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
  if (options?.migrated === false) await adminQuery(serverUrl, `create database ${name}`);
  else await createMigratedServerDatabase(serverUrl, name);
  const url = databaseUrl(serverUrl, name);
  const db = await openPostgresDatabase(url);
  return {
    db,
    url,
    async dispose() {
      await db.close();
      await adminQuery(serverUrl, `drop database if exists ${name} with (force)`);
    },
  };
}

/** The server's connection string with another database. */
function databaseUrl(serverUrl: string, name: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function adminQuery(
  serverUrl: string,
  sql: string,
  params: unknown[] = [],
): Promise<Record<string, unknown>[]> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows;
  } finally {
    await client.end();
  }
}
