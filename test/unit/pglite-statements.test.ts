import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import type { Database } from '../../src/db/database.js';
import { sqlState } from '../../src/db/database.js';
import { openPgliteDatabase } from '../../src/db/pglite-database.js';
import { PgliteStatements } from '../../src/db/pglite-statements.js';

const preparedCount = async (db: Database, text: string) =>
  (
    await db.query<{ n: number }>(
      'select count(*)::integer as n from pg_prepared_statements where statement = $1',
      [text],
    )
  ).rows[0]!.n;

describe('PGlite prepared statements (the embedded adapter)', () => {
  let db: Database;
  before(async () => {
    db = await openPgliteDatabase(undefined);
    await db.exec('create table items (id integer primary key, label text not null)');
  });
  after(() => db.close());

  it('prepares each SQL text once and reuses it', async () => {
    const text = 'select $1::integer + 1 as next';
    for (const n of [1, 2, 3]) {
      assert.deepEqual((await db.query(text, [n])).rows, [{ next: n + 1 }]);
    }
    assert.equal(await preparedCount(db, text), 1);
  });

  it('reads and writes values as PGlite query() does', async () => {
    const text = `select $1::timestamptz as at, $2::integer[] as list, $3::jsonb as doc,
      $4::boolean as flag, $5::text as missing, $6::bigint as big, $7::bytea as bytes`;
    const values = [
      new Date('2026-11-23T10:00:00.123Z'),
      [1, 2, 3],
      JSON.stringify({ a: [1, 'two'], b: null }),
      true,
      null,
      '9007199254740993',
      new Uint8Array([0, 255, 7]),
    ];
    const reference = await PGlite.create();
    try {
      const expected = (await reference.query(text, values)).rows;
      assert.deepEqual((await db.query(text, values)).rows, expected);
      assert.deepEqual((await db.query(text, values)).rows, expected); // prepared, second run
    } finally {
      await reference.close();
    }
  });

  it('counts the rows a statement changed', async () => {
    const insert = 'insert into items (id, label) select g, $1 from generate_series(1, $2) g';
    assert.equal((await db.query(insert, ['x', 3])).rowCount, 3);
    const update = 'update items set label = $1 where id >= $2';
    assert.equal((await db.query(update, ['y', 2])).rowCount, 2);
    assert.equal((await db.query(update, ['z', 3])).rowCount, 1);
  });

  it('raises PostgreSQL errors with their SQLSTATE and keeps working afterwards', async () => {
    const insert = 'insert into items (id, label) values ($1, $2)';
    await db.query(insert, [100, 'first']);
    await assert.rejects(db.query(insert, [100, 'again']), (error) => {
      assert.equal(sqlState(error), '23505');
      return true;
    });
    await assert.rejects(db.query('select nope from items'), (error) => {
      assert.equal(sqlState(error), '42703');
      return true;
    });
    await db.query(insert, [101, 'after']);
    const { rows } = await db.query('select label from items where id = $1', [101]);
    assert.deepEqual(rows, [{ label: 'after' }]);
  });

  it('runs inside transactions, and a rolled-back one leaves its statements usable', async () => {
    const insert = 'insert into items (id, label) values ($1, $2)';
    await assert.rejects(
      db.transaction(async (tx) => {
        await tx.query(insert, [200, 'rolled back']);
        throw new Error('abort');
      }),
      /abort/,
    );
    await db.transaction((tx) => tx.query(insert, [201, 'committed']));
    const { rows } = await db.query('select id from items where id in (200, 201) order by id');
    assert.deepEqual(rows, [{ id: 201 }]);
  });

  it('never runs a statement inside another caller’s open transaction', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    const transaction = db.transaction(async (tx) => {
      await tx.query('insert into items (id, label) values ($1, $2)', [300, 'pending']);
      entered();
      await held;
      throw new Error('roll back');
    });
    await inside;
    // Issued while the transaction is open: it must wait, then see the row rolled back.
    const outside = db.query('select count(*)::integer as n from items where id = $1', [300]);
    release();
    await assert.rejects(transaction, /roll back/);
    assert.deepEqual((await outside).rows, [{ n: 0 }]);
  });

  it('prepares a statement afresh once it is maxAgeMs old, so a grown table gets a new plan', async () => {
    const pglite = await PGlite.create();
    try {
      let clock = 0;
      const statements = new PgliteStatements(pglite, { maxAgeMs: 1000, now: () => clock });
      const run = (text: string, values: unknown[]) =>
        pglite._runExclusiveQuery(() => statements.run(text, values));
      const plans = async (text: string) =>
        (
          await pglite.query<{ generic: number; custom: number }>(
            `select generic_plans::integer as generic, custom_plans::integer as custom
             from pg_prepared_statements where statement = $1`,
            [text],
          )
        ).rows;
      await pglite.exec('create table grows (id integer primary key, label text)');
      await pglite.exec(`insert into grows select g, 'x' from generate_series(1, 5) g`);
      const update = 'update grows set label = $2 where id = $1';
      for (let i = 1; i <= 10; i++) await run(update, [(i % 5) + 1, 'y']);
      // PostgreSQL settled on a generic plan, made while the table had five rows.
      assert.deepEqual(await plans(update), [{ generic: 5, custom: 5 }]);
      await pglite.exec(`insert into grows select g, 'x' from generate_series(6, 20000) g`);
      clock = 999;
      await run(update, [19999, 'z']);
      assert.deepEqual(await plans(update), [{ generic: 6, custom: 5 }]);
      clock = 1000;
      await run(update, [20000, 'z']);
      // The old statement is closed and a new one planned on the table as it is now.
      assert.deepEqual(await plans(update), [{ generic: 0, custom: 1 }]);
      const { rows } = await pglite.query('select id, label from grows where label = $1', ['z']);
      assert.deepEqual(rows, [
        { id: 19999, label: 'z' },
        { id: 20000, label: 'z' },
      ]);
    } finally {
      await pglite.close();
    }
  });

  it('keeps at most its capacity of statements, closing the least recently used', async () => {
    const pglite = await PGlite.create();
    try {
      const statements = new PgliteStatements(pglite, { capacity: 2 });
      const run = (text: string, values: unknown[] = []) =>
        pglite._runExclusiveQuery(() => statements.run<Record<string, unknown>>(text, values));
      await run('select 1 as one');
      await run('select 2 as two');
      await run('select 1 as one'); // used again: now the most recent
      await run('select 3 as three'); // evicts "select 2"
      await run('select $1::integer as four', [4]); // evicts "select 1"; closes "select 2"
      // Listed by PGlite's own (unnamed) query, which prepares nothing.
      const { rows } = await pglite.query<{ statement: string }>(
        'select statement from pg_prepared_statements order by 1',
      );
      assert.deepEqual(
        rows.map((row) => row.statement),
        ['select $1::integer as four', 'select 3 as three'],
      );
      // An evicted statement is prepared again when it comes back.
      assert.deepEqual((await run('select 2 as two')).rows, [{ two: 2 }]);
    } finally {
      await pglite.close();
    }
  });
});
