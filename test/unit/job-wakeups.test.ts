import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { Database } from '../../src/db/database.js';
import { JobWakeups } from '../../src/lifecycle/job-wakeups.js';

/** A PostgreSQL stand-in that records each NOTIFY and answers it only when told to. */
function notifyRecorder() {
  const sent: { payload: string; answer: () => void }[] = [];
  const db = {
    backend: 'postgres',
    listen: async () => async () => undefined,
    query: (_text: string, values: string[]) =>
      new Promise((resolve) => {
        sent.push({ payload: values[1]!, answer: () => resolve({ rows: [], rowCount: 1 }) });
      }),
  } as unknown as Database;
  return { db, sent };
}

const nextTick = () => new Promise((resolve) => setImmediate(resolve));

it('sends one NOTIFY at a time, and what was announced meanwhile goes in the next one', async () => {
  const { db, sent } = notifyRecorder();
  const wakeups = await JobWakeups.listen(db);
  wakeups.announce(['a/1']);
  await nextTick();
  await nextTick();
  assert.deepEqual(
    sent.map((each) => each.payload),
    ['a/1'],
  );
  // Announced in later ticks while the first NOTIFY has no answer yet: held back.
  wakeups.announce(['b/1']);
  await nextTick();
  wakeups.announce(['c/1', 'a/1']);
  await nextTick();
  await nextTick();
  assert.equal(sent.length, 1, 'nothing more while one is in flight');
  sent[0]!.answer();
  await nextTick();
  await nextTick();
  assert.deepEqual(
    sent.map((each) => each.payload),
    ['a/1', 'b/1,c/1,a/1'],
  );
  sent[1]!.answer();
  await wakeups.close();
  assert.equal(sent.length, 2);
});

it('a wait given a mark returns at once if its key was woken since, and only its key', async () => {
  const wakeups = await JobWakeups.listen({ backend: 'pglite' } as unknown as Database);
  const mark = wakeups.mark('a/1');
  // Announced while the claimer was still looking (before it waits).
  wakeups.announce(['b/1']);
  let started = performance.now();
  await wakeups.wait('a/1', 200, undefined, mark);
  assert.ok(performance.now() - started >= 150, 'another key does not count');
  wakeups.announce(['a/1']);
  started = performance.now();
  await wakeups.wait('a/1', 5000, undefined, mark);
  assert.ok(performance.now() - started < 100, 'its own key does, though announced before');
  // A wake-up of every key (a NOTIFY without keys, a LISTEN reconnect) counts for all.
  const before = wakeups.mark('c/1');
  wakeups.notify(undefined);
  started = performance.now();
  await wakeups.wait('c/1', 5000, undefined, before);
  assert.ok(performance.now() - started < 100);
  await wakeups.close();
});
