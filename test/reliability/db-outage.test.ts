import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  adminToken,
  JobLoad,
  pieEnvironment,
  setUpPushTenant,
  waitUntilSettled,
} from '../helpers/fault-harness.js';
import { LedgerReceiver } from '../helpers/ledger-receiver.js';
import { startPie, type PieProcess } from '../helpers/pie-process.js';
import { ThrowawayPostgres } from '../helpers/throwaway-postgres.js';
import { sleep, waitFor } from '../helpers/wait.js';

/**
 * The database going away under load: `pie serve` on a PostgreSQL server of the
 * test's own (initdb + pg_ctl on a free port, removed afterwards), a steady load of job
 * creations whose jobs an http handler completes, and the server stopped for a few seconds
 * mid-load, then started again. PIE must answer 503 meanwhile, lose nothing it acknowledged,
 * and resume by itself.
 */

const OUTAGE_MS = 4000;
const MESSAGE = 'database unavailable; retry shortly';

describe('database outage [throwaway postgres]', () => {
  it('answers 503 while PostgreSQL is down, loses no 202 job and resumes without a restart', async () => {
    const postgres = await ThrowawayPostgres.create();
    const receiver = new LedgerReceiver();
    await receiver.start();
    const setting = await pieEnvironment({ databaseUrl: postgres.url }, { PIE_LEASE_S: '10' });
    let pie: PieProcess | undefined;
    // Stopped in `finally` too: a failed assertion must not leave its loops running forever.
    let running: JobLoad | undefined;
    try {
      pie = await startPie(setting.env);
      const token = await adminToken();
      const tenant = await setUpPushTenant(pie.url, token, receiver.url);

      const load = new JobLoad(pie.url, token, tenant.jobsRoute, 6);
      running = load;
      await waitFor('jobs before the outage', () => load.acked.length >= 100, 20_000);
      const ackedBefore = load.acked.length;
      await postgres.stop('fast');
      const down = load.now();
      const readyDown = await fetch(`${pie.url}/readyz`);
      assert.equal(readyDown.status, 503, 'not ready while the database is down');
      await sleep(OUTAGE_MS);
      const starting = load.now();
      await postgres.start();
      const up = load.now();
      await waitFor(
        'a 202 for a request sent after the restart',
        () => load.answers.some((answer) => answer.sentAt >= up && answer.status === 202),
        20_000,
      );
      await sleep(1000);
      await load.stop();

      // During the outage: every answer a 503 with the message and a Retry-After.
      const during = load.answers.filter(
        (answer) => answer.sentAt >= down && answer.answeredAt <= starting,
      );
      assert.ok(during.length >= 10, `requests during the outage: ${during.length}`);
      for (const answer of during) {
        assert.equal(answer.status, 503, JSON.stringify(answer));
        assert.deepEqual(answer.body, { success: false, message: MESSAGE });
        assert.ok(Number(answer.retryAfter) >= 1, `Retry-After: ${answer.retryAfter}`);
      }
      // Over the whole run: 202 or 503, never a 500, never a refused connection.
      const counts = load.assertStatusesOnly(['202', '503']);
      for (const answer of load.answers.filter((each) => each.status === 503)) {
        assert.deepEqual(answer.body, { success: false, message: MESSAGE });
      }
      assert.equal(pie.child.exitCode, null, 'PIE kept running');
      assert.equal((await fetch(`${pie.url}/readyz`)).status, 200, 'ready again');

      // Nothing acknowledged was lost, and everything finished.
      const jobs = await waitUntilSettled(pie.url, token, tenant.domain, 45_000);
      const missing = load.acked.filter((id) => jobs.get(id) === undefined);
      const unfinished = load.acked.filter((id) => jobs.get(id)?.status !== 'success');
      assert.deepEqual(missing, [], 'every 202 job exists');
      assert.deepEqual(unfinished, [], 'every 202 job succeeded');
      const { attempts, effects } = receiver.summary();
      assert.deepEqual(
        load.acked.filter((id) => effects.get(id) !== 1),
        [],
        'the handler completed each job exactly once',
      );
      assert.equal(receiver.badSignatures, 0);
      const acceptedAfter = load.answers.filter((each) => each.sentAt >= up && each.status === 202);
      console.log(
        `outage ${(starting - down) / 1000} s: ${load.answers.length} requests ` +
          `${JSON.stringify(counts)}; ${during.length} during the outage (all 503); ` +
          `202s: ${ackedBefore} before, ${acceptedAfter.length} after the restart, ` +
          `${load.acked.length} in all, all succeeded; ${jobs.size} jobs in the database; ` +
          `${receiver.receipts.length} deliveries to ${attempts.size} jobs`,
      );
    } catch (error) {
      console.log(
        `PIE output (end):\n${pie?.output().slice(-4000) ?? ''}\n` +
          `PostgreSQL log (end):\n${postgres.log().slice(-2000)}`,
      );
      throw error;
    } finally {
      await running?.stop();
      pie?.child.kill('SIGTERM');
      await pie?.exited;
      await receiver.close();
      await setting.dispose();
      await postgres.remove();
    }
  });
});
