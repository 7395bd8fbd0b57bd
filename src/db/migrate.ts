import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Database } from './database.js';

/** Migrations are plain, numbered SQL files: `migrations/000001_initial.sql`, ... */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

// Any constant works; it only has to be the same in every PIE process.
const MIGRATION_LOCK_KEY = 7_410_993_001;

export interface Migration {
  id: number;
  name: string;
  sql: string;
}

export function readMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  return fs
    .readdirSync(dir)
    .filter((file) => /^\d{6}_[a-z0-9_]+\.sql$/.test(file))
    .sort()
    .map((file) => ({
      id: Number(file.slice(0, 6)),
      name: file.replace(/\.sql$/, ''),
      sql: fs.readFileSync(path.join(dir, file), 'utf8'),
    }));
}

/**
 * Applies every pending migration in one transaction. The transaction first takes an advisory
 * lock, so when several processes start at once one migrates and the others wait, then find
 * nothing left to do. Returns the names applied by this call.
 */
export async function migrate(db: Database, migrations = readMigrations()): Promise<string[]> {
  return db.transaction(async (tx) => {
    await tx.query('select pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await tx.exec(`create table if not exists pie_migrations (
      id integer primary key,
      name text not null,
      applied_at timestamptz not null default now()
    )`);
    const { rows } = await tx.query<{ id: number }>('select id from pie_migrations');
    const applied = new Set(rows.map((row) => row.id));
    const names: string[] = [];
    for (const migration of migrations) {
      if (applied.has(migration.id)) continue;
      await tx.exec(migration.sql);
      await tx.query('insert into pie_migrations (id, name) values ($1, $2)', [
        migration.id,
        migration.name,
      ]);
      names.push(migration.name);
    }
    return names;
  });
}
