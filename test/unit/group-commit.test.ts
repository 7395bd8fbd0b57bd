import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Database } from '../../src/db/database.js';
import { GroupCommit } from '../../src/db/group-commit.js';
import { sleep } from '../helpers/wait.js';

/** A writer that records each statement's items, takes `ms`, and fails a batch holding `bad`. */
function recordingWriter(ms: number) {
  const state = { batches: [] as number[][], running: 0, mostAtOnce: 0 };
  const write = async (_db: Database, items: number[]) => {
    state.batches.push(items);
    state.running += 1;
    state.mostAtOnce = Math.max(state.mostAtOnce, state.running);
    try {
      await sleep(ms);
      if (items.includes(13)) throw new Error('13 is refused');
      return items.map((item) => item * 10);
    } finally {
      state.running -= 1;
    }
  };
  return { state, write };
}

const db = {} as Database;

describe('group commit', () => {
  it('writes what arrives together in one statement and answers each its own result', async () => {
    const { state, write } = recordingWriter(5);
    const commit = new GroupCommit(db, write);
    const results = await Promise.all([1, 2, 3, 4].map((n) => commit.write(n)));
    assert.deepEqual(results, [10, 20, 30, 40]);
    assert.deepEqual(state.batches, [[1, 2, 3, 4]]);
  });

  it('runs one statement at a time by default; what arrives meanwhile joins the next', async () => {
    const { state, write } = recordingWriter(20);
    const commit = new GroupCommit(db, write);
    const first = commit.write(1);
    await sleep(5);
    const later = [2, 3, 4].map((n) => commit.write(n));
    assert.deepEqual(await Promise.all([first, ...later]), [10, 20, 30, 40]);
    assert.deepEqual(state.batches, [[1], [2, 3, 4]]);
    assert.equal(state.mostAtOnce, 1);
  });

  it('runs up to `concurrency` statements at once, never more, and batches while all are busy', async () => {
    const { state, write } = recordingWriter(20);
    const commit = new GroupCommit(db, write, { concurrency: 2 });
    const all: Promise<number>[] = [];
    for (let n = 1; n <= 30; n++) {
      all.push(commit.write(n === 13 ? 31 : n));
      await sleep(2);
    }
    const sent = Array.from({ length: 30 }, (_, i) => (i === 12 ? 31 : i + 1));
    assert.deepEqual(
      await Promise.all(all),
      sent.map((n) => n * 10),
    );
    assert.equal(state.mostAtOnce, 2);
    assert.ok(state.batches.length < 30, `${state.batches.length} statements for 30 writes`);
    assert.deepEqual(
      state.batches.flat().sort((a, b) => a - b),
      [...sent].sort((a, b) => a - b),
    );
  });

  it('splits a failed batch so that only the bad item fails', async () => {
    const { state, write } = recordingWriter(1);
    const commit = new GroupCommit(db, write, { maxBatch: 3 });
    const settled = await Promise.allSettled([12, 13, 14, 15].map((n) => commit.write(n)));
    assert.deepEqual(
      settled.map((s) => (s.status === 'fulfilled' ? s.value : 'refused')),
      [120, 'refused', 140, 150],
    );
    assert.deepEqual(state.batches, [[12, 13, 14], [12], [13], [14], [15]]);
  });
});
