import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { testBackends } from '../helpers/backends.js';
import {
  adminToken,
  JobLoad,
  pieEnvironment,
  setUpPushTenant,
  waitUntilSettled,
} from '../helpers/fault-harness.js';
import { LedgerReceiver } from '../helpers/ledger-receiver.js';
import { startPie, type PieProcess } from '../helpers/pie-process.js';
import { freePort } from '../helpers/loopback.js';
import { sleep, waitFor } from '../helpers/wait.js';

/**
 * `pie serve` SIGKILLed under a load of job creations, and started again on the same port and
 * data. An http handler keeps a ledger of every delivery and of every completion PIE
 * accepted. Nothing acknowledged may be lost, and no job's effect may be applied twice: a job
 * delivered again (its holder died) arrives as a higher attempt, and only one attempt's
 * completion takes effect.
 */

for (const backend of testBackends()) {
  describe(`crash and restart under load [${backend.name}]`, () => {
    it('loses no 202 job and applies each job once', async () => {
      // Answering each delivery after 200 ms keeps some in flight when PIE dies: those come
      // again as a later attempt once their lease (5 s) runs out.
      const receiver = new LedgerReceiver(200);
      await receiver.start();
      // The same port after the restart: callbacks handed out before the kill still reach PIE.
      const port = String(await freePort());
      const setting = await pieEnvironment(backend.name, { PIE_PORT: port, PIE_LEASE_S: '5' });
      const token = await adminToken();
      let pie: PieProcess | undefined;
      // Stopped in `finally` too: a failed assertion must not leave its loops running forever.
      let running: JobLoad | undefined;
      try {
        pie = await startPie(setting.env);
        const tenant = await setUpPushTenant(pie.url, token, receiver.url);
        const load = new JobLoad(pie.url, token, tenant.jobsRoute, 6);
        running = load;
        await waitFor('jobs before the kill', () => load.acked.length >= 150, 30_000);

        pie.child.kill('SIGKILL');
        await pie.exited;
        const killedAt = load.now();
        const ackedAtKill = load.acked.length;
        const receivedAtKill = receiver.receipts.length;
        pie = await startPie(setting.env);
        const restartedAt = load.now();
        await waitFor(
          'a 202 after the restart',
          () => load.answers.some((each) => each.sentAt >= restartedAt && each.status === 202),
          30_000,
        );
        await sleep(1500);
        await load.stop();

        // 202 while up; no answer (status 0) while down; never a 5xx.
        const counts = load.assertStatusesOnly(['202', '0']);
        const jobs = await waitUntilSettled(pie.url, token, tenant.domain, 60_000);
        assert.deepEqual(
          load.acked.filter((id) => jobs.get(id) === undefined),
          [],
          'every 202 job exists after the restart',
        );
        assert.deepEqual(
          [...jobs]
            .filter(([, job]) => job.status !== 'success')
            .map(([id, job]) => `${id}: ${job.status}`),
          [],
          'every job succeeded',
        );

        // The ledger: every job delivered; exactly one accepted completion per job; a job
        // delivered twice only as a retried (higher) attempt.
        const { attempts, effects } = receiver.summary();
        assert.deepEqual(
          [...jobs.keys()].filter((id) => !attempts.has(id)),
          [],
          'every job reached the handler',
        );
        assert.deepEqual(
          [...jobs.keys()].filter((id) => effects.get(id) !== 1),
          [],
          "each job's effect applied once",
        );
        const repeatedAttempt = [...attempts].filter(
          ([, list]) => new Set(list).size !== list.length,
        );
        assert.deepEqual(repeatedAttempt, [], 'no attempt delivered twice');
        assert.equal(receiver.badSignatures, 0);
        const redelivered = [...attempts.values()].filter((list) => list.length > 1).length;
        console.log(
          `[${backend.name}] killed at ${(killedAt / 1000).toFixed(1)} s with ${ackedAtKill} 202s ` +
            `and ${receivedAtKill} deliveries; back after ${((restartedAt - killedAt) / 1000).toFixed(1)} s; ` +
            `answers ${JSON.stringify(counts)}; ${load.acked.length} acknowledged, ${jobs.size} jobs ` +
            `in the database, all succeeded; ${receiver.receipts.length} deliveries, ` +
            `${redelivered} jobs delivered again as a later attempt, ` +
            `${receiver.completions.length} completions of which ${[...effects.values()].reduce((a, b) => a + b, 0)} took effect`,
        );
      } catch (error) {
        console.log(`PIE output (end):\n${pie?.output().slice(-4000) ?? ''}`);
        throw error;
      } finally {
        await running?.stop();
        pie?.child.kill('SIGTERM');
        await pie?.exited;
        await receiver.close();
        await setting.dispose();
      }
    });
  });
}
