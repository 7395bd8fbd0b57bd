import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, it } from 'node:test';
import { ThrowawayPostgresPair } from '../helpers/throwaway-postgres-pair.js';

/**
 * The helper failover and read-replica tests stand on: a primary and its streaming standby of
 * the test's own. The standby serves reads of what the primary wrote and refuses writes; after
 * the primary's crash it is promoted and takes writes.
 */

async function withLogsOnFailure(pair: ThrowawayPostgresPair, steps: () => Promise<void>) {
  try {
    await steps();
  } catch (error) {
    console.log(
      `primary log (end):\n${pair.log('primary').slice(-2000)}\n` +
        `standby log (end):\n${pair.log('standby').slice(-2000)}`,
    );
    throw error;
  } finally {
    await pair.remove();
  }
}

describe('throwaway PostgreSQL pair [throwaway postgres]', () => {
  it('replicates synchronously, refuses writes on the standby and promotes it after a crash', async () => {
    const pair = await ThrowawayPostgresPair.create({ synchronous: true });
    await withLogsOnFailure(pair, async () => {
      assert.equal(
        pair.failoverUrl,
        `postgres://postgres@127.0.0.1:${pair.primaryPort},127.0.0.1:${pair.standbyPort}` +
          '/postgres?target_session_attrs=read-write',
      );
      await pair.query('primary', 'create table notes (body text not null)');
      await pair.query('primary', "insert into notes values ('before the crash')");
      await pair.waitForStandbyReplay();
      assert.deepEqual(await pair.query('standby', 'select body from notes'), [
        { body: 'before the crash' },
      ]);
      await assert.rejects(pair.query('standby', "insert into notes values ('refused')"), {
        code: '25006', // read_only_sql_transaction
      });

      await pair.killPrimary();
      await assert.rejects(pair.query('primary', 'select 1'), { code: 'ECONNREFUSED' });
      await pair.promoteStandby();
      await pair.query('standby', "insert into notes values ('after the promotion')");
      assert.deepEqual(await pair.query('standby', 'select body from notes order by body'), [
        { body: 'after the promotion' },
        { body: 'before the crash' },
      ]);
    });
    assert.equal(fs.existsSync(pair.dir), false, 'the directories are gone');
  });

  it('replicates asynchronously when asked to', async () => {
    const pair = await ThrowawayPostgresPair.create({ synchronous: false });
    await withLogsOnFailure(pair, async () => {
      assert.deepEqual(
        await pair.query('primary', 'select state, sync_state from pg_stat_replication'),
        [{ state: 'streaming', sync_state: 'async' }],
      );
    });
    assert.equal(fs.existsSync(pair.dir), false, 'the directories are gone');
  });
});
