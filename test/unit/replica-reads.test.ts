import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Queryable, QueryResult } from '../../src/db/database.js';
import { ReplicaReads } from '../../src/db/pg-database.js';

/** A server that answers with its name, or fails with `error` when one is set. */
function server(name: string, error?: object): Queryable & { asked: number } {
  return {
    asked: 0,
    query<Row>(): Promise<QueryResult<Row>> {
      this.asked += 1;
      if (error !== undefined) return Promise.reject(Object.assign(new Error(name), error));
      return Promise.resolve({ rows: [{ server: name } as Row], rowCount: 1 });
    },
    exec: () => Promise.resolve(),
  };
}

describe('lists read from a replica (DATABASE_READ_URL)', () => {
  it('read from the replica alone while it answers', async () => {
    const primary = server('primary');
    const reads = new ReplicaReads(server('replica'), primary);
    assert.deepEqual((await reads.query('select 1')).rows, [{ server: 'replica' }]);
    assert.equal(primary.asked, 0);
  });

  it('read from the primary while the replica cannot be reached, or cancels for replay', async () => {
    for (const error of [{ code: 'ECONNREFUSED' }, { code: '57P03' }, { code: '40001' }]) {
      const reads = new ReplicaReads(server('replica', error), server('primary'));
      assert.deepEqual((await reads.query('select 1')).rows, [{ server: 'primary' }], error.code);
    }
  });

  it("pass a list's own error on, without asking the primary", async () => {
    const primary = server('primary');
    const reads = new ReplicaReads(server('replica', { code: '42P01' }), primary);
    await assert.rejects(reads.query('select 1'), { code: '42P01' });
    assert.equal(primary.asked, 0);
  });
});
