import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, it } from 'node:test';
import type { Envelope } from '../../src/domain/delivery.js';
import { verifyWebhook } from '../../src/dispatch/handlers/webhook-signature.js';
import { FakeTrueFoundry } from '../helpers/fake-truefoundry.js';
import { createTenant, runJob, type Tenant } from '../helpers/fixtures.js';
import { closeServer, listenOnLoopback } from '../helpers/loopback.js';
import { describeOnEachBackend, type TestServer } from '../helpers/test-server.js';
import { waitForValue } from '../helpers/wait.js';

const SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

// Job ids repeat across the two backends' databases; deliveries are told apart by client too.

/** A model handler over HTTP that verifies signatures and answers as each test scripts it. */
class Receiver {
  readonly deliveries: Envelope[] = [];
  answers: { status: number; headers?: Record<string, string> }[] = [];
  badSignatures = 0;
  /** How many of the next deliveries to leave unanswered. */
  hangNext = 0;
  private server!: http.Server;
  url = '';

  async start() {
    this.server = http.createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        if (!verifyWebhook(SECRET, request.headers, body)) this.badSignatures += 1;
        this.deliveries.push(JSON.parse(body) as Envelope);
        if (this.hangNext > 0) {
          this.hangNext -= 1;
          return;
        }
        const answer = this.answers.shift() ?? { status: 202 };
        response.writeHead(answer.status, answer.headers).end('{}');
      });
    });
    this.url = `http://127.0.0.1:${await listenOnLoopback(this.server)}/hook`;
  }

  close() {
    return closeServer(this.server);
  }
}

/** Waits for a delivery, a retry or a job's end: up to 8 s unless told, looking every 50 ms. */
const until = <T>(what: string, probe: () => Promise<T | undefined>, ms = 8000) =>
  waitForValue(what, probe, ms, 50);

async function finished(server: TestServer, tenant: Tenant, jobId: string) {
  return until(`job ${jobId} to finish`, async () => {
    const job = await server.get(`${tenant.domainPath}/jobs/${jobId}`);
    return ['success', 'failure', 'cancelled'].includes(job.body.status) ? job.body : undefined;
  });
}

const receiver = new Receiver();
let truefoundry: FakeTrueFoundry;
before(async () => {
  await receiver.start();
  truefoundry = await FakeTrueFoundry.start({ token: 'tf-secret' });
  process.env['TFY_TEST_TOKEN'] = 'tf-secret';
});
after(async () => {
  await receiver.close();
  await truefoundry.close();
});

describeOnEachBackend(
  'dispatch',
  (server) => {
    it('http: delivers a signed envelope; the handler completes it with its callback token', async () => {
      const tenant = await createTenant(server(), {
        version: { handler: { type: 'http', url: receiver.url, secret: SECRET } },
      });
      const jobId = await runJob(server(), tenant, { input: { horizon: 30 } });
      const envelope = await until('the delivery', async () =>
        receiver.deliveries.find((d) => d.client_id === tenant.clientId && d.job_id === jobId),
      );
      assert.equal(receiver.badSignatures, 0);
      assert.equal(envelope.attempt, 1);
      assert.deepEqual(envelope.input, { horizon: 30 });
      assert.deepEqual(envelope.features, { route: 'r1', capacity: 60 });
      assert.equal(envelope.client_id, tenant.clientId);
      assert.ok(envelope.callback.url.startsWith(server().url));

      const job = await until('the hand-over', async () => {
        const current = await server().get(`${tenant.domainPath}/jobs/${jobId}`);
        return current.body.status === 'dispatched' && current.body.dispatched_at
          ? current.body
          : undefined;
      });
      assert.equal(job.attempt, 1);

      const callback = envelope.callback.token;
      const done = await server().post(
        envelope.callback.url.slice(server().url.length),
        { status: 'success', output: { ok: true } },
        { token: callback },
      );
      assert.equal(done.status, 200, JSON.stringify(done.body));
      const other = await server().get(`${tenant.domainPath}/jobs`, { token: callback });
      assert.equal(other.status, 403, 'a callback token reaches nothing else');
    });

    it('http: retries a 503 honouring Retry-After, then fails once attempts run out', async () => {
      const tenant = await createTenant(server(), {
        version: {
          handler: { type: 'http', url: receiver.url, secret: SECRET },
          max_attempts: 2,
        },
      });
      receiver.answers = [{ status: 503, headers: { 'retry-after': '0' } }];
      const retried = await runJob(server(), tenant);
      await until('the second attempt', async () =>
        receiver.deliveries.find(
          (d) => d.client_id === tenant.clientId && d.job_id === retried && d.attempt === 2,
        ),
      );
      assert.equal(
        receiver.deliveries.filter((d) => d.client_id === tenant.clientId && d.job_id === retried)
          .length,
        2,
      );

      receiver.answers = [
        { status: 500, headers: { 'retry-after': '0' } },
        { status: 500, headers: { 'retry-after': '0' } },
      ];
      const doomed = await runJob(server(), tenant);
      const job = await finished(server(), tenant, doomed);
      assert.equal(job.status, 'failure');
      assert.equal(job.error.code, 'http_5xx');
      assert.equal(job.attempt, 2);
    });

    it('http: a 429 is retried, and so is a handler that hangs', async () => {
      const tenant = await createTenant(server(), {
        version: { handler: { type: 'http', url: receiver.url, secret: SECRET } },
      });
      receiver.answers = [{ status: 429, headers: { 'retry-after': '0' } }];
      const limited = await runJob(server(), tenant);
      await until('the retry after a 429', async () =>
        receiver.deliveries.find(
          (d) => d.client_id === tenant.clientId && d.job_id === limited && d.attempt === 2,
        ),
      );
      receiver.hangNext = 1;
      const hung = await runJob(server(), tenant);
      const retried = await until(
        'the retry after a hang',
        async () =>
          receiver.deliveries.find(
            (d) => d.client_id === tenant.clientId && d.job_id === hung && d.attempt === 2,
          ),
        15_000,
      );
      assert.equal(retried.attempt, 2);
      const { rows } = await server().db.query<{ last_error: { code: string } }>(
        'select last_error from jobs where job_id = $1 and client_id = $2',
        [hung, tenant.clientId],
      );
      assert.equal(rows[0]!.last_error.code, 'request_timeout');
    });

    it('http: a redirect fails the job without being followed', async () => {
      const tenant = await createTenant(server(), {
        version: { handler: { type: 'http', url: receiver.url, secret: SECRET } },
      });
      receiver.answers = [{ status: 302, headers: { location: 'http://127.0.0.1:9/elsewhere' } }];
      const job = await finished(server(), tenant, await runJob(server(), tenant));
      assert.equal(job.status, 'failure');
      assert.equal(job.error.code, 'redirect');
    });

    it('command: runs the demo handler and records its output', async () => {
      const tenant = await createTenant(server(), {
        version: {
          handler: {
            type: 'command',
            command: process.execPath,
            args: ['examples/handlers/demo-model.mjs'],
          },
        },
      });
      const ok = await finished(server(), tenant, await runJob(server(), tenant));
      assert.equal(ok.status, 'success', JSON.stringify(ok.error));
      assert.equal(typeof ok.output.prediction.delay_minutes, 'number');
      const bad = await finished(
        server(),
        tenant,
        await runJob(server(), tenant, { input: { fail: true } }),
      );
      assert.equal(bad.status, 'failure');
      assert.equal(bad.error.code, 'exit');
      assert.equal(bad.error.exit_code, 3);
    });

    it('truefoundry: triggers a run and fails the job when the run fails', async () => {
      const tenant = await createTenant(server(), {
        version: {
          handler: {
            type: 'truefoundry',
            base_url: truefoundry.url,
            application_id: 'app-1',
            token_env: 'TFY_TEST_TOKEN',
          },
        },
      });
      const jobId = await runJob(server(), tenant);
      const triggered = await until('the trigger', async () =>
        truefoundry.runs.find(
          (r) => r.envelope?.client_id === tenant.clientId && r.envelope.job_id === jobId,
        ),
      );
      await until('the run name to be kept', async () => {
        const { rows } = await server().db.query<{ handler_ref: string | null }>(
          'select handler_ref from jobs where job_id = $1',
          [jobId],
        );
        return rows[0]?.handler_ref ?? undefined;
      });
      truefoundry.setRunStatus(triggered.name, 'FAILED');
      const job = await finished(server(), tenant, jobId);
      assert.equal(job.status, 'failure');
      assert.equal(job.error.code, 'truefoundry_run_failed');
    });

    it('a job past its deadline fails with error.code timeout', async () => {
      const tenant = await createTenant(server(), { version: { timeout_s: 1 } });
      const job = await finished(server(), tenant, await runJob(server(), tenant));
      assert.equal(job.status, 'failure');
      assert.equal(job.error.code, 'timeout');
    });

    it('an expired lease puts the job back for another attempt', async () => {
      const tenant = await createTenant(server());
      const jobId = await runJob(server(), tenant);
      const claimPath = `/v2/models/${tenant.modelId}/versions/${tenant.version}/jobs/claim`;
      const first = await server().post(claimPath, { worker_id: 'w1', lease_s: 5 });
      assert.equal(first.body.jobs[0].job_id, jobId);
      await server().db.query(
        `update jobs set lease_expires_at = now() - interval '1 second', run_at = now()
         where job_id = $1`,
        [jobId],
      );
      const second = await until('the job to be claimable again', async () => {
        const claim = await server().post(claimPath, { worker_id: 'w2', lease_s: 5 });
        return claim.body.jobs[0];
      });
      assert.equal(second.attempt, 2);
      const stale = await server().post(
        first.body.jobs[0].callback.url.slice(server().url.length),
        { status: 'success' },
        { token: first.body.jobs[0].callback.token },
      );
      assert.equal(stale.status, 409);
    });

    it('a waiting worker receives a retried job when it comes due, not at the end of its wait', async () => {
      const tenant = await createTenant(server());
      const jobId = await runJob(server(), tenant);
      const claimPath = `/v2/models/${tenant.modelId}/versions/${tenant.version}/jobs/claim`;
      await server().post(claimPath, { worker_id: 'w1', lease_s: 5 });
      await server().db.query(
        `update jobs set lease_expires_at = now() - interval '1 second' where job_id = $1 and client_id = $2`,
        [jobId, tenant.clientId],
      );
      // The reaper requeues it with a backoff of 0.5 to 1 s; a long-poll must not sleep past that.
      const started = Date.now();
      const claim = await server().post(claimPath, { worker_id: 'w2', wait_ms: 8000 });
      assert.equal(claim.body.jobs[0]?.job_id, jobId);
      assert.ok(Date.now() - started < 4000, `took ${Date.now() - started} ms`);
    });

    it('a job in flight when its version switches to pull workers goes to the workers', async () => {
      const tenant = await createTenant(server(), {
        version: { handler: { type: 'http', url: receiver.url, secret: SECRET } },
      });
      receiver.hangNext = 1;
      const jobId = await runJob(server(), tenant);
      await until('the delivery', async () =>
        receiver.deliveries.find((d) => d.client_id === tenant.clientId && d.job_id === jobId),
      );
      const switched = await server().put(
        `/v2/models/${tenant.modelId}/versions/${tenant.version}`,
        {
          features: [
            { name: 'route', type: 'string', required: true },
            { name: 'capacity', type: 'integer', default: 60 },
          ],
          handler: { type: 'worker' },
        },
      );
      assert.equal(switched.status, 200, JSON.stringify(switched.body));
      const claimPath = `/v2/models/${tenant.modelId}/versions/${tenant.version}/jobs/claim`;
      const claimed = await until(
        'a worker to get the job',
        async () =>
          (await server().post(claimPath, { worker_id: 'w', wait_ms: 1000 })).body.jobs[0],
        15_000,
      );
      assert.equal(claimed.job_id, jobId);
      assert.equal(claimed.attempt, 2);
    });

    it('/metrics reports jobs and dispatch latency', async () => {
      const response = await fetch(`${server().url}/metrics`);
      const text = await response.text();
      assert.equal(response.status, 200);
      assert.match(text, /pie_jobs_created_total\{job_type="inference"\} \d+/);
      assert.match(text, /pie_dispatch_latency_seconds_bucket/);
      assert.match(text, /pie_http_request_duration_seconds_count/);
    });
  },
  undefined,
  {},
);
