import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Queryable } from '../../src/db/database.js';
import { OpenJobQuota } from '../../src/limits/open-job-quota.js';

/** A database whose grouped count answers `open`, counting how often it was asked. */
function fakeDatabase(open: Record<string, number>) {
  const state = { open, counts: 0, fail: false, gate: undefined as Promise<void> | undefined };
  const db = {
    async query() {
      state.counts += 1;
      await state.gate;
      if (state.fail) throw new Error('database is away');
      const rows = Object.entries(state.open).map(([client_id, count]) => ({
        client_id,
        open: count,
      }));
      return { rows, rowCount: rows.length };
    },
    exec: async () => undefined,
  } as unknown as Queryable;
  return { db, state };
}

/** Lets pending promise callbacks (a count in progress) run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

function quotaOn(open: Record<string, number>, limit: number) {
  const clock = { ms: 0 };
  const { db, state } = fakeDatabase(open);
  return { quota: new OpenJobQuota(db, limit, { now: () => clock.ms }), clock, state };
}

describe('OpenJobQuota', () => {
  it('refuses a client at its quota and admits the others', async () => {
    const { quota } = quotaOn({ full: 3, some: 1 }, 3);
    assert.equal(await quota.admit('full'), undefined);
    assert.ok(await quota.admit('some'));
    assert.ok(await quota.admit('none'));
  });

  it('counts the jobs it admitted, in flight and once started', async () => {
    const { quota } = quotaOn({}, 2);
    const first = await quota.admit('c');
    assert.ok(first);
    assert.equal(quota.open('c'), 1, 'in flight counts');
    first.settle(1);
    first.settle(1); // settling twice changes nothing
    assert.equal(quota.open('c'), 1);
    const failed = await quota.admit('c');
    failed!.settle(0); // a request that started nothing gives its place back
    assert.equal(quota.open('c'), 1);
    (await quota.admit('c'))!.settle(1);
    assert.equal(await quota.admit('c'), undefined);
  });

  it('counts at most once a second, and concurrent requests share one count', async () => {
    const { quota, clock, state } = quotaOn({ c: 5 }, 10);
    await Promise.all(Array.from({ length: 20 }, () => quota.admit('c')));
    assert.equal(state.counts, 1);
    clock.ms += 999;
    await quota.admit('c');
    assert.equal(state.counts, 1);
    clock.ms += 1;
    await quota.admit('c');
    assert.equal(state.counts, 2);
  });

  it('counts for clients under half their quota only every 10 s', async () => {
    const { quota, clock, state } = quotaOn({ busy: 4 }, 10);
    await quota.admit('quiet'); // the first count
    clock.ms += 5000;
    (await quota.admit('quiet'))!.settle(1);
    (await quota.admit('busy'))!.settle(1);
    assert.equal(state.counts, 1, 'no client at half its quota: no count');
    (await quota.admit('busy'))!.settle(1); // busy is now at 5 of 10
    assert.equal(state.counts, 2);
    await settle();
    clock.ms += 10_000;
    await quota.admit('quiet');
    assert.equal(state.counts, 3, 'the counts are 10 s old: other processes may have started jobs');
  });

  it('sees jobs that finished at the next count', async () => {
    const { quota, clock, state } = quotaOn({ c: 2 }, 2);
    assert.equal(await quota.admit('c'), undefined);
    state.open = { c: 1 };
    clock.ms += 500;
    assert.equal(await quota.admit('c'), undefined, 'counts are a second old at most');
    clock.ms += 500;
    assert.ok(await quota.admit('c'));
  });

  it('replaces its own counts with the next count, without counting a job twice', async () => {
    const { quota, clock, state } = quotaOn({}, 5);
    for (let i = 0; i < 3; i++) (await quota.admit('c'))!.settle(1);
    assert.equal(quota.open('c'), 3);
    state.open = { c: 3 }; // the three, now in the database
    clock.ms += 1000;
    (await quota.admit('c'))!.settle(1);
    assert.equal(quota.open('c'), 4);
  });

  // A request wrongly waiting on the held count would hang: the timeout turns that into a failure.
  it(
    'does not hold a request up for a count unless the client may be at its quota',
    { timeout: 5000 },
    async () => {
      const { quota, clock, state } = quotaOn({ near: 1, full: 2 }, 2);
      await quota.admit('other'); // the first count: every request waits for it
      clock.ms += 1000;
      let release!: () => void;
      state.gate = new Promise<void>((resolve) => (release = resolve));
      state.open = { near: 1, full: 1 };
      // Under its quota by the last count: admitted while the new count runs.
      assert.ok(await quota.admit('near'));
      // At its quota by the last count: waits for the new one, which frees a place.
      const waiting = quota.admit('full');
      await settle();
      assert.equal(state.counts, 2, 'one count for both');
      release();
      assert.ok(await waiting);
    },
  );

  it('adds a job started while a count runs on top of that count', { timeout: 5000 }, async () => {
    const { quota, clock, state } = quotaOn({ c: 1 }, 5);
    await quota.admit('other');
    clock.ms += 1000;
    let release!: () => void;
    state.gate = new Promise<void>((resolve) => (release = resolve));
    const during = await quota.admit('c'); // sent the count, then admitted: not in it
    during!.settle(1);
    assert.equal(quota.open('c'), 2);
    release();
    await settle();
    assert.equal(quota.open('c'), 2);
  });

  it('leaves a job admitted before a count and finished after it to the count', async () => {
    const { quota, clock, state } = quotaOn({}, 5);
    const straddling = await quota.admit('c');
    clock.ms += 1000;
    state.open = { c: 1 }; // its job committed before the count read
    await quota.admit('other');
    await settle();
    straddling!.settle(1);
    assert.equal(quota.open('c'), 1, 'the count has it; it is not added again');
  });

  it('keeps its last counts while the database is away', async () => {
    const { quota, clock, state } = quotaOn({ c: 2 }, 2);
    assert.equal(await quota.admit('c'), undefined);
    state.fail = true;
    clock.ms += 1000;
    assert.equal(await quota.admit('c'), undefined);
    assert.ok(await quota.admit('other'));
    assert.equal(state.counts, 2, 'and does not ask again until a second has passed');
  });

  it('is off at 0: admits everything without asking the database', async () => {
    const { quota, state } = quotaOn({ c: 1_000_000 }, 0);
    for (let i = 0; i < 10; i++) (await quota.admit('c'))!.settle(1);
    assert.equal(state.counts, 0);
  });
});
