import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { testBackends } from '../../helpers/backends.js';
import {
  adminToken,
  api,
  apiOk,
  pieEnvironment,
  setUpPushTenant,
  waitUntilSettled,
} from '../../helpers/fault-harness.js';
import { LedgerReceiver } from '../../helpers/ledger-receiver.js';
import { startPie, type PieProcess } from '../../helpers/pie-process.js';
import { freePort } from '../../helpers/loopback.js';
import { waitFor } from '../../helpers/wait.js';

/**
 * Graceful shutdown: SIGTERM to `pie serve` while two deliveries are in flight, one
 * the handler answers within the grace period and one it holds past it, and while a pull
 * worker waits in a long poll. Readiness must fail first, the long poll answer at once, the
 * first delivery finish, the second be released to the queue, and the process exit 0 after
 * the grace period with no job left held; a restarted process then finishes both jobs.
 */

const GRACE_S = 3;

interface JobRow {
  job_id: string;
  status: string;
  attempt: number;
  locked_by: string | null;
  last_error: { code?: string } | null;
}

for (const backend of testBackends()) {
  describe(`graceful shutdown [${backend.name}]`, () => {
    it('SIGTERM: not ready, long polls answered, deliveries finished or released, exit 0', async () => {
      const receiver = new LedgerReceiver();
      await receiver.start();
      const port = String(await freePort());
      const setting = await pieEnvironment(backend.name, {
        PIE_PORT: port,
        PIE_SHUTDOWN_GRACE_S: String(GRACE_S),
      });
      const token = await adminToken();
      let pie: PieProcess | undefined;
      try {
        pie = await startPie(setting.env);
        const url = pie.url;
        const tenant = await setUpPushTenant(url, token, receiver.url);
        for (const [route, body] of [
          ['/v2/models/pull', {}],
          ['/v2/models/pull/versions/1', { features: [] }],
        ] as const) {
          await apiOk(url, token, 'PUT', route, body);
        }
        const claimRoute = '/v2/models/pull/versions/1/jobs/claim';
        const longPoll = api(url, token, 'POST', claimRoute, {
          worker_id: 'w1',
          wait_ms: 30_000,
        });

        // Job "quick" is answered 2 s after it arrives, inside the grace period; job "held"
        // is not answered at all.
        const quick = await api(url, token, 'POST', tenant.jobsRoute, {
          input: { delay_ms: 2000 },
        });
        const held = await api(url, token, 'POST', tenant.jobsRoute, { input: { hold: true } });
        assert.equal(quick.status, 202);
        assert.equal(held.status, 202);
        const quickId = String(quick.body.job_id);
        const heldId = String(held.body.job_id);
        await waitFor('both deliveries', () => receiver.receipts.length === 2, 10_000);

        const signalled = Date.now();
        pie.child.kill('SIGTERM');
        let notReadyAfterMs: number | undefined;
        await waitFor(
          'readiness to fail',
          async () => {
            const ready = await fetch(`${url}/readyz`);
            const body = (await ready.json()) as { status: string };
            if (ready.status !== 503) return false;
            assert.equal(body.status, 'shutting down');
            notReadyAfterMs = Date.now() - signalled;
            return true;
          },
          2000,
        );
        const polled = await longPoll;
        const pollAnsweredAfterMs = Date.now() - signalled;
        assert.equal(polled.status, 200, JSON.stringify(polled.body));
        assert.deepEqual(polled.body, { jobs: [] });
        assert.ok(pollAnsweredAfterMs < 1500, `long poll answered after ${pollAnsweredAfterMs} ms`);
        const lateClaim = await api(url, token, 'POST', claimRoute, { worker_id: 'w2' });
        assert.equal(lateClaim.status, 503, JSON.stringify(lateClaim.body));
        assert.equal(lateClaim.body.success, false);
        assert.match(lateClaim.body.message, /shutting down/);
        assert.equal(lateClaim.headers.get('retry-after'), '1');
        assert.equal(pie.child.exitCode, null, 'still serving while deliveries are in flight');

        const code = await pie.exited;
        const exitedAfterMs = Date.now() - signalled;
        pie = undefined;
        assert.equal(code, 0, 'exit code');
        // It waited the grace period for the held delivery, and not much longer.
        assert.ok(
          exitedAfterMs >= GRACE_S * 1000 - 250 && exitedAfterMs < GRACE_S * 1000 + 2500,
          `exited ${exitedAfterMs} ms after SIGTERM (grace ${GRACE_S} s)`,
        );

        // Nothing is held by the dead process: "quick" was handed over (or already completed),
        // "held" is back in the queue with its attempt given back.
        const db = await setting.open();
        let rows: JobRow[];
        try {
          ({ rows } = await db.query<JobRow>(
            `select job_id, status, attempt, locked_by, last_error from jobs
             where client_id = 'faults' order by job_id`,
          ));
        } finally {
          await db.close();
        }
        const byId = new Map(rows.map((row) => [row.job_id, row]));
        assert.deepEqual(
          rows.filter((row) => row.locked_by !== null),
          [],
          'no job left held by the stopped process',
        );
        const quickRow = byId.get(quickId);
        assert.ok(
          quickRow?.status === 'success' || quickRow?.status === 'dispatched',
          JSON.stringify(quickRow),
        );
        assert.equal(quickRow?.attempt, 1);
        const heldRow = byId.get(heldId);
        assert.equal(heldRow?.status, 'queued', JSON.stringify(heldRow));
        assert.equal(heldRow?.attempt, 0, 'the released attempt is given back');
        assert.equal(heldRow?.last_error?.code, 'shutdown');

        // A restarted process delivers the released job again and takes the first's completion.
        receiver.unhold();
        pie = await startPie(setting.env);
        const jobs = await waitUntilSettled(pie.url, token, tenant.domain, 20_000);
        assert.equal(jobs.get(quickId)?.status, 'success');
        assert.equal(jobs.get(heldId)?.status, 'success');
        const { attempts, effects } = receiver.summary();
        assert.deepEqual(attempts.get(quickId), [1], '"quick" was delivered once');
        assert.deepEqual(attempts.get(heldId), [1, 1], '"held" was delivered again, same attempt');
        const heldIds = receiver.receipts.filter((each) => each.job_id === heldId);
        assert.equal(heldIds[0]?.webhook_id, heldIds[1]?.webhook_id, 'with the same webhook id');
        assert.equal(effects.get(quickId), 1);
        assert.equal(effects.get(heldId), 1);

        // With nothing in flight, a shutdown is immediate.
        const idleSignalled = Date.now();
        pie.child.kill('SIGTERM');
        assert.equal(await pie.exited, 0);
        const idleExitMs = Date.now() - idleSignalled;
        pie = undefined;
        assert.ok(idleExitMs < 2000, `idle shutdown took ${idleExitMs} ms`);
        console.log(
          `[${backend.name}] SIGTERM: not ready after ${notReadyAfterMs} ms, long poll answered ` +
            `after ${pollAnsweredAfterMs} ms, exit 0 after ${exitedAfterMs} ms (grace ${GRACE_S} s); ` +
            `"quick" ${quickRow?.status} at exit, "held" released and redelivered; ` +
            `idle shutdown ${idleExitMs} ms`,
        );
      } catch (error) {
        console.log(`PIE output (end):\n${pie?.output().slice(-4000) ?? ''}`);
        throw error;
      } finally {
        pie?.child.kill('SIGKILL');
        await pie?.exited;
        await receiver.close();
        await setting.dispose();
      }
    });
  });
}
