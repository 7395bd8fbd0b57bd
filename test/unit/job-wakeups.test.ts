import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { Database } from '../../src/db/database.js';
import { JobWakeups } from '../../src/lifecycle/job-wakeups.js';

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
