import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/config.js';
import { lockDataDir } from './data-dir-lock.js';
import type { Database } from './database.js';
import { openPgliteDatabase } from './pglite-database.js';
import { openPostgresDatabase } from './pg-database.js';

/** `DATABASE_URL` selects a PostgreSQL server; without it PIE keeps its data in PGlite. */
export async function openDatabase(
  config: Config,
  options: { onCreated?: (applied: string[]) => void } = {},
): Promise<Database> {
  if (config.databaseUrl !== undefined) return openPostgresDatabase(config.databaseUrl);
  const dir = embeddedDatabaseDir(config);
  fs.mkdirSync(dir, { recursive: true });
  const unlock = lockDataDir(config.dataDir);
  try {
    return await openPgliteDatabase(dir, { ...options, onClose: unlock });
  } catch (error) {
    unlock();
    throw error;
  }
}

export function embeddedDatabaseDir(config: Config): string {
  return path.join(config.dataDir, 'pgdata');
}

/** Where the data lives, for the start-up banner, without the password. */
export function describeDatabase(config: Config): string {
  if (config.databaseUrl === undefined) return `embedded PGlite in ${embeddedDatabaseDir(config)}`;
  const url = new URL(config.databaseUrl);
  url.password = url.password === '' ? '' : '***';
  return `PostgreSQL at ${url.toString()}`;
}
