import crypto from 'node:crypto';
import pg from 'pg';
import type { Backend, Database } from '../../src/db/database.js';
import { migrate } from '../../src/db/migrate.js';
import { openPgliteDatabase } from '../../src/db/pglite-database.js';
import { openPostgresDatabase } from '../../src/db/pg-database.js';

/**
 * The backends every integration test runs on: the embedded PGlite always, and the PostgreSQL
 * server named by DATABASE_URL when it is set. Each test file gets its own migrated database:
 * an in-memory PGlite, or a fresh database on the server that is dropped afterwards.
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

async function openPglite(options?: { migrated?: boolean }): Promise<TestDatabase> {
  const db = await openPgliteDatabase(undefined);
  if (options?.migrated !== false) await migrate(db);
  return { db, url: undefined, dispose: () => db.close() };
}

async function openServerDatabase(
  serverUrl: string,
  options?: { migrated?: boolean },
): Promise<TestDatabase> {
  const name = `pie_test_${process.pid}_${crypto.randomBytes(4).toString('hex')}`;
  await adminQuery(serverUrl, `create database ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  const db = await openPostgresDatabase(url.toString());
  if (options?.migrated !== false) await migrate(db);
  return {
    db,
    url: url.toString(),
    async dispose() {
      await db.close();
      await adminQuery(serverUrl, `drop database if exists ${name} with (force)`);
    },
  };
}

async function adminQuery(serverUrl: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}
