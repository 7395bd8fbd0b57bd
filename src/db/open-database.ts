import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, type Config } from '../config/config.js';
import { lockDataDir } from './data-dir-lock.js';
import type { Database } from './database.js';
import { openPgliteDatabase } from './pglite-database.js';
import { openPostgresDatabase } from './pg-database.js';
import { parseServerList, ServerListError } from './postgres-servers.js';

/** `DATABASE_URL` selects a PostgreSQL server; without it PIE keeps its data in PGlite. */
export async function openDatabase(
  config: Config,
  options: { onCreated?: (applied: string[]) => void } = {},
): Promise<Database> {
  if (config.databaseUrl !== undefined) {
    checkServerList('DATABASE_URL', config.databaseUrl);
    if (config.databaseReadUrl !== undefined) {
      checkServerList('DATABASE_READ_URL', config.databaseReadUrl);
    }
    return openPostgresDatabase(config.databaseUrl, config.databaseReadUrl);
  }
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

/** A connection string PIE cannot read stops the start with a message naming the variable. */
function checkServerList(name: string, connectionString: string): void {
  try {
    parseServerList(connectionString);
  } catch (error) {
    if (error instanceof ServerListError) throw new ConfigError(`${name} ${error.message}`);
    throw error;
  }
}

/** Where the data lives, for the start-up banner, without the passwords. */
export function describeDatabase(config: Config): string {
  if (config.databaseUrl === undefined) return `embedded PGlite in ${embeddedDatabaseDir(config)}`;
  const primary = `PostgreSQL at ${withoutPassword(config.databaseUrl)}`;
  if (config.databaseReadUrl === undefined) return primary;
  return `${primary}, lists from ${withoutPassword(config.databaseReadUrl)}`;
}

// Not `new URL`: a list of hosts (`h1:5432,h2:5433`) is not a URL's host.
function withoutPassword(connectionString: string): string {
  return connectionString.replace(/^([a-z]+:\/\/[^:@/?#]*):[^@/?#]*@/i, '$1:***@');
}
