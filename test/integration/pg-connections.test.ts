import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { Database } from '../../src/db/database.js';
import { openPostgresDatabase } from '../../src/db/pg-database.js';
import { JobStops } from '../../src/lifecycle/job-stops.js';
import { JobWakeups } from '../../src/lifecycle/job-wakeups.js';
import { getOrCreateSetting } from '../../src/repositories/settings.repository.js';
import { testBackends, type TestDatabase } from '../helpers/backends.js';
import { sleep } from '../helpers/wait.js';

/**
 * What only a PostgreSQL server has: a pool of connections, and other PIE processes sharing the
 * database. (The embedded PGlite is one connection in one process; its side of the same
 * behaviour, wake-ups in process, is covered by the dispatch tests on both backends.)
 */
for (const backend of testBackends().filter((each) => each.name === 'postgres')) {
  describe(`PostgreSQL connections [${backend.name}]`, () => {
    let test: TestDatabase;
    let url: string;
    let admin: pg.Client;

    before(async () => {
      test = await backend.open();
      url = test.url!;
      admin = new pg.Client({ connectionString: url });
      await admin.connect();
    });

    after(async () => {
      await admin.end();
      await test.dispose();
    });

    /** Connections to this test's database other than the admin's own. */
    async function poolConnections(): Promise<number> {
      const { rows } = await admin.query<{ n: number }>(
        `select count(*)::int as n from pg_stat_activity
         where datname = current_database() and pid <> pg_backend_pid()`,
      );
      return rows[0]!.n;
    }

    it("keeps connections opened for a surge past pg's default 10 s idle timeout", async () => {
      // Another "process" with its own pool, so that only its connections are counted.
      const db = await openPostgresDatabase(url);
      try {
        const before = await poolConnections();
        await Promise.all(Array.from({ length: 4 }, () => db.query('select pg_sleep(0.2)')));
        const surge = await poolConnections();
        assert.ok(surge >= before + 3, `the surge opened connections: ${before} → ${surge}`);
        // A connection reopened for the next surge costs the server a process and cold caches,
        // which other tenants' requests then wait behind.
        await sleep(11_000);
        assert.equal(await poolConnections(), surge, 'idle connections are still open');
      } finally {
        await db.close();
      }
    });

    it("paces PIE's own VACUUM and ANALYZE as autovacuum does; other settings are untouched", async () => {
      const db = await openPostgresDatabase(url);
      try {
        const setting = async (name: string) =>
          (await db.query<{ value: string }>(`select current_setting($1) as value`, [name]))
            .rows[0]!.value;
        assert.equal(await setting('vacuum_cost_delay'), '2ms');
        assert.equal(await setting('statement_timeout'), '0');
      } finally {
        await db.close();
      }
      // A DATABASE_URL that sets options itself keeps its own.
      const separator = url.includes('?') ? '&' : '?';
      const own = await openPostgresDatabase(
        `${url}${separator}options=-c%20vacuum_cost_delay%3D5`,
      );
      try {
        const { rows } = await own.query<{ value: string }>(
          `select current_setting('vacuum_cost_delay') as value`,
        );
        assert.equal(rows[0]!.value, '5ms');
      } finally {
        await own.close();
      }
    });

    it('a setting another process is creating at the same moment is read, not lost', async () => {
      // Three processes starting on a new database each create the callback-token secret; one
      // of them crashed at start when another's insert committed while its own waited on it.
      const db = await openPostgresDatabase(url);
      const other = new pg.Client({ connectionString: url });
      await other.connect();
      try {
        await other.query('begin');
        await other.query(`insert into pie_settings (name, value) values ('race', 'theirs')`);
        const ours = getOrCreateSetting(db, 'race', 'ours');
        await sleep(200); // our insert now waits for theirs
        await other.query('commit');
        assert.equal(await ours, 'theirs');
      } finally {
        await other.end();
        await db.close();
      }
    });

    it("announces new jobs to other processes' waiters through NOTIFY", async () => {
      const [here, there]: [Database, Database] = await Promise.all([
        openPostgresDatabase(url),
        openPostgresDatabase(url),
      ]);
      const [announcer, listener] = await Promise.all([
        JobWakeups.listen(here),
        JobWakeups.listen(there),
      ]);
      try {
        const started = performance.now();
        const woken = listener.wait('model-a/1', 5000);
        announcer.announce(['model-a/1']);
        await woken;
        const ms = performance.now() - started;
        assert.ok(ms < 2000, `woken by the NOTIFY, not the timeout: ${ms.toFixed(0)} ms`);
      } finally {
        await Promise.all([announcer.close(), listener.close()]);
        await Promise.all([here.close(), there.close()]);
      }
    });
    it("tells other processes' claim pumps which jobs to stop through NOTIFY", async () => {
      const [here, there]: [Database, Database] = await Promise.all([
        openPostgresDatabase(url),
        openPostgresDatabase(url),
      ]);
      const [announcer, listener] = await Promise.all([
        JobStops.listen(here),
        JobStops.listen(there),
      ]);
      try {
        // Enough ids for several payloads under NOTIFY's 8000-byte limit: every one arrives.
        const jobIds = Array.from({ length: 2000 }, (_, i) => String(100_000_000_000 + i));
        const heard = new Set<string>();
        let checkAll = false;
        const stop = listener.onStop((ids) => {
          if (ids === undefined) checkAll = true;
          else for (const id of ids) heard.add(id);
        });
        announcer.announce(jobIds.slice(0, 1000));
        announcer.announce(jobIds.slice(1000));
        const started = performance.now();
        while (heard.size < jobIds.length && performance.now() - started < 5000) await sleep(20);
        stop();
        assert.equal(heard.size, jobIds.length, 'every job id crossed over');
        assert.equal(checkAll, false);
      } finally {
        await Promise.all([announcer.close(), listener.close()]);
        await Promise.all([here.close(), there.close()]);
      }
    });
  });
}
