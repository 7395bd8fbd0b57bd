import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { migrate, readMigrations } from '../../src/db/migrate.js';
import { openPostgresDatabase } from '../../src/db/pg-database.js';
import { testBackends } from '../helpers/backends.js';

for (const backend of testBackends()) {
  describe(`migrations [${backend.name}]`, () => {
    it('apply every numbered file once, even when several processes start together', async () => {
      const { db, url, dispose } = await backend.open({ migrated: false });
      try {
        // On PostgreSQL each "process" gets its own pool, as separate `pie serve`s would.
        const others =
          url === undefined
            ? [db, db]
            : await Promise.all([1, 2].map(() => openPostgresDatabase(url)));
        try {
          const results = await Promise.all([db, ...others].map((each) => migrate(each)));
          const expected = readMigrations().map((m) => m.name);
          assert.deepEqual(results.flat().sort(), expected.sort(), 'each applied exactly once');
          assert.deepEqual(await migrate(db), [], 'nothing left on a second run');
          const { rows } = await db.query<{ name: string }>(
            'select name from pie_migrations order by id',
          );
          assert.deepEqual(
            rows.map((row) => row.name),
            expected,
          );
        } finally {
          if (url !== undefined) await Promise.all(others.map((other) => other.close()));
        }
      } finally {
        await dispose();
      }
    });

    it('rolls back a failing migration whole', async () => {
      const { db, dispose } = await backend.open({ migrated: false });
      try {
        const broken = [
          ...readMigrations(),
          {
            id: 999_999,
            name: '999999_broken',
            sql: 'create table half_done (x int); select nope;',
          },
        ];
        await assert.rejects(migrate(db, broken));
        const { rows } = await db.query(
          "select 1 from information_schema.tables where table_name in ('half_done', 'clients')",
        );
        assert.equal(rows.length, 0, 'nothing from the failed run was kept');
      } finally {
        await dispose();
      }
    });
  });
}
