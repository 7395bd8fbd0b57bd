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
