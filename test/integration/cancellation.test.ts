import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { verifyWebhook } from '../../src/dispatch/handlers/webhook-signature.js';
import type { Envelope } from '../../src/domain/delivery.js';
import { AcceptingHandler, isAlive, sleeperCommand } from '../helpers/cancel-peers.js';
import { FakeTrueFoundry } from '../helpers/fake-truefoundry.js';
import { createTenant, runJob, type Tenant } from '../helpers/fixtures.js';
import { startPieWorker } from '../helpers/pie-process.js';
import { describeOnEachBackend, errorMessage, type TestServer } from '../helpers/test-server.js';
import { sleep, waitForValue } from '../helpers/wait.js';

const SECRET = 'whsec_' + Buffer.from('the cancellation tests secret!!!').toString('base64');
/** The command handler's time between SIGTERM and SIGKILL. */
const KILL_GRACE_MS = 2000;

const until = <T>(what: string, probe: () => T | undefined | Promise<T | undefined>, ms = 8000) =>
  waitForValue(what, probe, ms, 25);

const handler = new AcceptingHandler();
let truefoundry: FakeTrueFoundry;
before(async () => {
  await handler.start();
  truefoundry = await FakeTrueFoundry.start({ token: 'tf-cancel-secret' });
  process.env['TFY_CANCEL_TOKEN'] = 'tf-cancel-secret';
});
after(async () => {
  await handler.close();
  await truefoundry.close();
});

async function cancel(server: TestServer, tenant: Tenant, jobId: string) {
  const answer = await server.post(`${tenant.domainPath}/jobs/${jobId}/cancel`);
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  assert.equal(answer.body.status, 'cancelled');
}

async function jobOf(server: TestServer, tenant: Tenant, jobId: string) {
  const job = await server.get(`${tenant.domainPath}/jobs/${jobId}`);
  assert.equal(job.status, 200, JSON.stringify(job.body));
  return job.body;
}

/** How many delivery attempts of `handler` kind were counted with `outcome`. */
async function attemptsCounted(server: TestServer, kind: string, outcome: string) {
  const { values } = await server.ctx.metrics.attempts.get();
  return values
    .filter((v) => v.labels.handler === kind && v.labels.outcome === outcome)
    .reduce((sum, v) => sum + v.value, 0);
}

/** How many cancels of `handler` kind were counted with `outcome`. */
async function cancellationsCounted(server: TestServer, kind: string, outcome: string) {
  const { values } = await server.ctx.metrics.cancellationsDelivered.get();
  return values
    .filter((v) => v.labels.handler === kind && v.labels.outcome === outcome)
    .reduce((sum, v) => sum + v.value, 0);
}

describeOnEachBackend(
  'cancellation reaches the handler',
  (server) => {
    /** A command job started and running: its tenant, id and process. */
    async function runningCommand(sleeper: ReturnType<typeof sleeperCommand>) {
      const tenant = await createTenant(server(), {
        version: { handler: { type: 'command', command: sleeper.command, args: sleeper.args } },
      });
      const jobId = await runJob(server(), tenant);
      const pid = await until('the command to start', () => sleeper.pidOf(jobId));
      return { tenant, jobId, pid };
    }

    it("command: a cancelled job's process is stopped, and the job stays cancelled", async () => {
      const { tenant, jobId, pid } = await runningCommand(sleeperCommand());
      const before = await cancellationsCounted(server(), 'command', 'delivered');
      const cancelled = Date.now();
      await cancel(server(), tenant, jobId);
      await until('the process to end', () => (isAlive(pid) ? undefined : true), KILL_GRACE_MS);
      assert.ok(Date.now() - cancelled < KILL_GRACE_MS, 'SIGTERM ended it, before any SIGKILL');
      await until('the cancel to be counted', async () =>
        (await cancellationsCounted(server(), 'command', 'delivered')) > before ? true : undefined,
      );
      // The dispatcher recorded nothing for the stopped attempt: no retry, no failure.
      const job = await jobOf(server(), tenant, jobId);
      assert.equal(job.status, 'cancelled');
      assert.equal(job.attempt, 1);
      assert.equal(job.error, null);
    });

    it('command: a process that ignores SIGTERM is killed after the grace', async () => {
      const { tenant, jobId, pid } = await runningCommand(sleeperCommand({ trapSigterm: true }));
      await cancel(server(), tenant, jobId);
      await sleep(KILL_GRACE_MS / 2);
      assert.ok(isAlive(pid), 'SIGTERM alone does not end it');
      await until('the SIGKILL', () => (isAlive(pid) ? undefined : true), KILL_GRACE_MS * 2);
      assert.equal((await jobOf(server(), tenant, jobId)).status, 'cancelled');
    });

    it('bulk cancel stops the processes of the jobs it cancels', async () => {
      const sleeper = sleeperCommand();
      const { tenant, jobId, pid } = await runningCommand(sleeper);
      const second = await runJob(server(), tenant);
      const secondPid = await until('the second command', () => sleeper.pidOf(second));
      const answer = await server().post(`${tenant.domainPath}/jobs/cancel`, {});
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.deepEqual([...answer.body.job_ids].sort(), [jobId, second].sort());
      for (const each of [pid, secondPid]) {
        await until(`process ${each} to end`, () => (isAlive(each) ? undefined : true), 3000);
      }
    });

    it('pull worker: a heartbeat after the cancel is a 409 saying so; so is a completion', async () => {
      const tenant = await createTenant(server());
      const jobId = await runJob(server(), tenant);
      const token = await server().token(['jobs:complete']);
      const versionPath = `/v2/models/${tenant.modelId}/versions/${tenant.version}`;
      const claim = await server().post(
        `${versionPath}/jobs/claim`,
        { worker_id: 'w-cancel' },
        { token },
      );
      const envelope = claim.body.jobs[0] as Envelope;
      assert.equal(envelope.job_id, jobId);
      await cancel(server(), tenant, jobId);

      const callback = { token: envelope.callback.token };
      const heartbeat = await server().post(
        envelope.callback.heartbeat_url.slice(server().url.length),
        { status: 'running' },
        callback,
      );
      assert.equal(heartbeat.status, 409);
      assert.equal(errorMessage(heartbeat), `job "${jobId}" was cancelled; stop working on it`);
      const completion = await server().post(
        envelope.callback.url.slice(server().url.length),
        { status: 'success', output: { late: true } },
        callback,
      );
      assert.equal(completion.status, 409, JSON.stringify(completion.body));
      const job = await jobOf(server(), tenant, jobId);
      assert.equal(job.status, 'cancelled');
      assert.equal(job.output, null);
    });

    it('http: a handler that accepted the job gets a signed job.cancelled POST', async () => {
      const tenant = await createTenant(server(), {
        version: { handler: { type: 'http', url: handler.url, secret: SECRET } },
      });
      const jobId = await runJob(server(), tenant);
      const mine = (body: string) => {
        const parsed = JSON.parse(body) as { job_id: string };
        return parsed.job_id === jobId;
      };
      await until('the delivery', () =>
        handler.deliveries.find((d) => d.client_id === tenant.clientId && d.job_id === jobId),
      );
      // Handed over: the lease ends once the 202 is recorded.
      await until('the hand-over', async () => {
        const { rows } = await server().db.query<{ locked_by: string | null }>(
          'select locked_by from jobs where job_id = $1 and client_id = $2',
          [jobId, tenant.clientId],
        );
        return rows[0]?.locked_by === null ? true : undefined;
      });
      await cancel(server(), tenant, jobId);
      const notice = await until('the cancel notice', () =>
        handler.notices.find((n) => mine(n.body)),
      );
      assert.equal(verifyWebhook(SECRET, notice.headers, notice.body), true);
      assert.deepEqual(JSON.parse(notice.body), { type: 'job.cancelled', job_id: jobId });
      assert.equal(notice.headers['webhook-id'], `${jobId}_cancelled`);
      await until('the notice to be counted', async () =>
        (await cancellationsCounted(server(), 'http', 'delivered')) > 0 ? true : undefined,
      );
    });

    it('http: a delivery still waiting for its answer is abandoned, and not retried', async () => {
      const tenant = await createTenant(server(), {
        version: { handler: { type: 'http', url: handler.url, secret: SECRET } },
      });
      const jobId = await runJob(server(), tenant, { input: { hold: true } });
      await until('the delivery', () =>
        handler.deliveries.find((d) => d.client_id === tenant.clientId && d.job_id === jobId),
      );
      const before = await attemptsCounted(server(), 'http', 'cancelled');
      await cancel(server(), tenant, jobId);
      await until('the delivery to be abandoned', async () =>
        (await attemptsCounted(server(), 'http', 'cancelled')) > before ? true : undefined,
      );
      await until('the cancel notice', () =>
        handler.notices.find((n) => (JSON.parse(n.body) as Envelope).job_id === jobId),
      );
      const job = await jobOf(server(), tenant, jobId);
      assert.equal(job.status, 'cancelled');
      assert.equal(job.error, null);
    });

    for (const by of ['application_id', 'deployment_id'] as const) {
      it(`truefoundry (${by}): the run is terminated through the control plane`, async () => {
        const id = `${by === 'application_id' ? 'app' : 'dep'}-${server().backend}`;
        const tenant = await createTenant(server(), {
          version: {
            handler: {
              type: 'truefoundry',
              base_url: truefoundry.url,
              [by]: id,
              token_env: 'TFY_CANCEL_TOKEN',
            },
          },
        });
        const jobId = await runJob(server(), tenant);
        const runName = await until('the run name to be kept', async () => {
          const { rows } = await server().db.query<{ handler_ref: string | null }>(
            'select handler_ref from jobs where job_id = $1 and client_id = $2',
            [jobId, tenant.clientId],
          );
          return rows[0]?.handler_ref ?? undefined;
        });
        await cancel(server(), tenant, jobId);
        const deploymentId = by === 'deployment_id' ? id : FakeTrueFoundry.deploymentIdOf(id);
        await until('the terminate call', () =>
          truefoundry.terminations.find((t) => t.jobRunName === runName),
        );
        assert.deepEqual(
          truefoundry.terminations.filter((t) => t.jobRunName === runName),
          [{ deploymentId, jobRunName: runName }],
        );
        assert.equal(truefoundry.run(runName).status, 'TERMINATED');
        assert.equal((await jobOf(server(), tenant, jobId)).status, 'cancelled');
      });
    }

    it('pie worker stops the command of a job cancelled under it', async () => {
      const tenant = await createTenant(server());
      const jobId = await runJob(server(), tenant);
      const sleeper = sleeperCommand();
      const token = await server().token(['jobs:complete'], { models: [tenant.modelId] });
      // The shortest lease, so that a heartbeat comes every 5/3 s.
      const worker = startPieWorker(server().url, token, [
        '--model',
        tenant.modelId,
        '--version',
        tenant.version,
        '--lease',
        '5',
        '--wait',
        '5000',
        '--once',
        '--',
        sleeper.command,
        ...sleeper.args,
      ]);
      try {
        const pid = await until('the command to start', () => sleeper.pidOf(jobId), 15_000);
        await cancel(server(), tenant, jobId);
        await until('the command to end', () => (isAlive(pid) ? undefined : true), 5000);
        assert.equal(await worker.exited, 0, worker.stderr());
        assert.match(
          worker.stderr(),
          /heartbeat refused \(409 job "\d+" was cancelled; stop working/,
        );
      } finally {
        worker.child.kill('SIGKILL');
      }
    });
  },
  undefined,
  {},
);

// A lease renewed every second: the backstop for a cancel the dispatcher did not hear.
describeOnEachBackend(
  'cancellation the dispatcher did not hear',
  (server) => {
    it('stops the command at the next lease renewal', async () => {
      const sleeper = sleeperCommand();
      const tenant = await createTenant(server(), {
        version: { handler: { type: 'command', command: sleeper.command, args: sleeper.args } },
      });
      const jobId = await runJob(server(), tenant);
      const pid = await until('the command to start', () => sleeper.pidOf(jobId));
      // Cancelled behind the dispatcher's back: no job event, no announcement.
      await server().db.query(
        `update jobs set status = 'cancelled', finished_at = now(), locked_by = null,
           lease_expires_at = null
         where client_id = $1 and job_id = $2`,
        [tenant.clientId, jobId],
      );
      await until('the process to end', () => (isAlive(pid) ? undefined : true), 5000);
      await until('the attempt to be counted as cancelled', async () =>
        (await attemptsCounted(server(), 'command', 'cancelled')) > 0 ? true : undefined,
      );
      const job = await jobOf(server(), tenant, jobId);
      assert.equal(job.status, 'cancelled');
      assert.equal(job.error, null);
    });
  },
  undefined,
  { leaseS: 3 },
);
