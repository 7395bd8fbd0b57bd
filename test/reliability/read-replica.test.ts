import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { adminToken, api, pieEnvironment, setUpPushTenant } from '../helpers/fault-harness.js';
import { LedgerReceiver } from '../helpers/ledger-receiver.js';
import { startPie, type PieProcess } from '../helpers/pie-process.js';
import { ThrowawayPostgresPair, type PairMember } from '../helpers/throwaway-postgres-pair.js';

/**
 * DATABASE_READ_URL: `pie serve` on a primary of the test's own, with its streaming standby as
 * the replica lists read from. Which server ran the job list is read from each server's
 * `pg_stat_statements`. With the standby's replay paused (a replica lagging as far as it can), a
 * job just created is still found by its id, which reads the primary, while the list, which
 * reads the replica, does not have it yet.
 */

/** How many times a server ran the job list's statement (`listJobs`). */
async function jobListCalls(pair: ThrowawayPostgresPair, which: PairMember): Promise<number> {
  const rows = await pair.query(
    which,
    `select coalesce(sum(calls), 0)::int as calls from pg_stat_statements
     where query like '%from jobs%' and query like '%order by created_at desc, job_id desc%'`,
  );
  return Number(rows[0]?.['calls']);
}

describe('lists from a read replica [throwaway primary and standby]', () => {
  it('serves job lists from DATABASE_READ_URL and reads a new job by id from the primary', async () => {
    const pair = await ThrowawayPostgresPair.create({
      synchronous: false,
      statementStatistics: true,
    });
    const receiver = new LedgerReceiver();
    await receiver.start();
    const setting = await pieEnvironment(
      { databaseUrl: pair.primaryUrl },
      { DATABASE_READ_URL: pair.standbyUrl },
    );
    let pie: PieProcess | undefined;
    try {
      pie = await startPie(setting.env);
      const token = await adminToken();
      const tenant = await setUpPushTenant(pie.url, token, receiver.url);
      const created: string[] = [];
      for (let i = 0; i < 5; i += 1) {
        const answer = await api(pie.url, token, 'POST', tenant.jobsRoute, { input: {} });
        assert.equal(answer.status, 202, JSON.stringify(answer.body));
        created.push(String((answer.body as { job_id: string }).job_id));
      }
      await pair.waitForStandbyReplay();

      const before = {
        primary: await jobListCalls(pair, 'primary'),
        standby: await jobListCalls(pair, 'standby'),
      };
      for (let i = 0; i < 4; i += 1) {
        const list = await api(pie.url, token, 'GET', `${tenant.domain}/jobs?limit=100`);
        assert.equal(list.status, 200, JSON.stringify(list.body));
        const ids = (list.body as { items: { job_id: string }[] }).items.map((job) => job.job_id);
        assert.deepEqual([...ids].sort(), [...created].sort());
      }
      assert.equal(
        (await jobListCalls(pair, 'standby')) - before.standby,
        4,
        'the replica ran each list',
      );
      assert.equal(await jobListCalls(pair, 'primary'), before.primary, 'the primary ran no list');

      // The replica stops replaying: what the primary commits now, only the primary has.
      await pair.query('standby', 'select pg_wal_replay_pause()');
      const fresh = await api(pie.url, token, 'POST', tenant.jobsRoute, { input: {} });
      assert.equal(fresh.status, 202, JSON.stringify(fresh.body));
      const freshId = String((fresh.body as { job_id: string }).job_id);
      const read = await api(pie.url, token, 'GET', `${tenant.domain}/jobs/${freshId}`);
      assert.equal(read.status, 200, 'a job read right after its creation is found');
      assert.equal((read.body as { job_id: string }).job_id, freshId);
      const lagging = await api(pie.url, token, 'GET', `${tenant.domain}/jobs?limit=100`);
      assert.equal(lagging.status, 200);
      const lagged = (lagging.body as { items: { job_id: string }[] }).items.map((j) => j.job_id);
      assert.ok(!lagged.includes(freshId), 'the list read the paused replica');

      await pair.query('standby', 'select pg_wal_replay_resume()');
      await pair.waitForStandbyReplay();
      const caughtUp = await api(pie.url, token, 'GET', `${tenant.domain}/jobs?limit=100`);
      const ids = (caughtUp.body as { items: { job_id: string }[] }).items.map((j) => j.job_id);
      assert.ok(ids.includes(freshId), 'the replica caught up');
    } catch (error) {
      console.log(
        `PIE output (end):\n${pie?.output().slice(-4000) ?? ''}\n` +
          `standby log (end):\n${pair.log('standby').slice(-2000)}`,
      );
      throw error;
    } finally {
      pie?.child.kill('SIGTERM');
      await pie?.exited;
      await receiver.close();
      await setting.dispose();
      await pair.remove();
    }
  });
});
