import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseWorkerArgs } from '../../src/cli/worker/args.js';
import { runWorker } from '../../src/cli/worker/claim-loop.js';
import { createTenant, type Tenant } from '../helpers/fixtures.js';
import { startPieWorker } from '../helpers/pie-process.js';
import { describeOnEachBackend, errorMessage } from '../helpers/test-server.js';

const DEMO_MODEL = fileURLToPath(
  new URL('../../examples/handlers/demo-model.mjs', import.meta.url),
);

// The versions made by createTenant keep the default {"type": "worker"} handler, so their jobs
// wait for pull workers. The dispatcher runs only for its reaper (expired leases).
describeOnEachBackend(
  'pull workers',
  (server) => {
    const versionPath = (tenant: Tenant) =>
      `/v2/models/${tenant.modelId}/versions/${tenant.version}`;

    async function runJob(tenant: Tenant, input: Record<string, unknown> = {}): Promise<string> {
      const run = await server().post(
        `${tenant.domainPath}/service/service-1/assignments/default/jobs`,
        { job_type: 'inference', input },
      );
      assert.equal(run.status, 202, JSON.stringify(run.body));
      return run.body.job_id as string;
    }

    const getJob = async (tenant: Tenant, jobId: string) => {
      const job = await server().get(`${tenant.domainPath}/jobs/${jobId}`);
      assert.equal(job.status, 200, JSON.stringify(job.body));
      return job.body;
    };

    async function claim(tenant: Tenant, body: Record<string, unknown>, token?: string) {
      const workerToken = token ?? (await server().token(['jobs:complete']));
      return server().post(
        `${versionPath(tenant)}/jobs/claim`,
        { worker_id: 'test-worker', ...body },
        { token: workerToken },
      );
    }

    async function leaseOf(jobId: string): Promise<Date> {
      const { rows } = await server().db.query<{ lease_expires_at: Date }>(
        'select lease_expires_at from jobs where job_id = $1',
        [jobId],
      );
      const lease = rows[0]?.lease_expires_at;
      assert.ok(lease instanceof Date, `job ${jobId} holds no lease`);
      return lease;
    }

    function assertDemoOutput(job: any, tenant: Tenant) {
      assert.equal(job.status, 'success', JSON.stringify(job));
      assert.equal(job.attempt, 1);
      assert.equal(job.output.model, `${tenant.modelId}@${tenant.version}`);
      assert.equal(job.output.job_type, 'inference');
      const delay = job.output.prediction.delay_minutes;
      assert.ok(typeof delay === 'number' && delay >= 0 && delay < 180, JSON.stringify(job));
    }

    it('the reference worker runs each job through the command and reports it', async () => {
      const tenant = await createTenant(server());
      const ok = [
        await runJob(tenant, { horizon_min: 15 }),
        await runJob(tenant, { horizon_min: 30 }),
        await runJob(tenant, { horizon_min: 60 }),
      ];
      const failing = await runJob(tenant, { fail: true });

      const options = parseWorkerArgs(
        [
          '--url',
          server().url,
          '--model',
          tenant.modelId,
          '--version',
          tenant.version,
          '--worker-id',
          'in-process',
          '--concurrency',
          '8',
          '--wait',
          '1000',
          '--once',
          '--',
          process.execPath,
          DEMO_MODEL,
        ],
        {},
        { host: '127.0.0.1', port: 8080 },
      );
      const token = await server().token(['jobs:complete'], { models: [tenant.modelId] });
      const code = await runWorker(options, () => Promise.resolve(token), {
        stop: new AbortController().signal,
      });
      assert.equal(code, 0);

      for (const jobId of ok) assertDemoOutput(await getJob(tenant, jobId), tenant);
      const failed = await getJob(tenant, failing);
      assert.equal(failed.status, 'failure');
      assert.equal(failed.attempt, 1);
      assert.equal(failed.error.code, 'exit');
      assert.equal(failed.error.exit_code, 3);
      assert.match(failed.error.stderr_tail, /failed on purpose/);
    });

    it('`pie worker --once` runs jobs with PIE_TOKEN from the command line', async () => {
      const tenant = await createTenant(server());
      const jobs = [await runJob(tenant), await runJob(tenant, { horizon_min: 5 })];
      const failing = await runJob(tenant, { fail: true });
      const token = await server().token(['jobs:complete'], { models: [tenant.modelId] });
      const worker = startPieWorker(server().url, token, [
        '--model',
        tenant.modelId,
        '--version',
        tenant.version,
        '--concurrency',
        '4',
        '--once',
        '--',
        'node',
        'examples/handlers/demo-model.mjs',
      ]);
      const code = await worker.exited;
      const stderr = worker.stderr();
      assert.equal(code, 0, stderr);
      assert.match(stderr, /attempt 1: success/);
      assert.match(stderr, /attempt 1: failure \(exit: /);

      for (const jobId of jobs) assertDemoOutput(await getJob(tenant, jobId), tenant);
      const failed = await getJob(tenant, failing);
      assert.equal(failed.status, 'failure');
      assert.equal(failed.attempt, 1);
      assert.equal(failed.error.code, 'exit');
      assert.equal(failed.error.exit_code, 3);
    });

    it('a long-poll claim returns as soon as a job is created', async () => {
      const tenant = await createTenant(server());
      const token = await server().token(['jobs:complete'], { models: [tenant.modelId] });
      const started = Date.now();
      const claimed = claim(tenant, { wait_ms: 2000, max_jobs: 5 }, token);
      await delay(200);
      const jobId = await runJob(tenant, { horizon_min: 10 });
      const response = await claimed;
      const elapsed = Date.now() - started;
      assert.equal(response.status, 200, JSON.stringify(response.body));
      assert.ok(elapsed < 1500, `the claim took ${elapsed} ms`);
      assert.equal(response.body.jobs.length, 1);
      const [envelope] = response.body.jobs;
      assert.equal(envelope.job_id, jobId);
      assert.equal(envelope.attempt, 1);
      assert.equal(envelope.model_id, tenant.modelId);
      assert.deepEqual(envelope.input, { horizon_min: 10 });
      assert.equal(
        envelope.callback.url,
        `${server().url}${versionPath(tenant)}/jobs/${jobId}/complete`,
      );
      assert.equal((await getJob(tenant, jobId)).status, 'dispatched');
    });

    it('an empty claim answers {jobs: []} once wait_ms has passed', async () => {
      const tenant = await createTenant(server());
      const started = Date.now();
      const response = await claim(tenant, { wait_ms: 500 });
      const elapsed = Date.now() - started;
      assert.equal(response.status, 200);
      assert.deepEqual(response.body, { jobs: [] });
      assert.ok(elapsed >= 450, `the claim answered after ${elapsed} ms`);

      const unknown = await server().post(
        `/v2/models/${tenant.modelId}/versions/9.9.9/jobs/claim`,
        { worker_id: 'w' },
        { token: await server().token(['jobs:complete']) },
      );
      assert.equal(unknown.status, 404);
    });

    it('a callback token completes only its own job, and only its own attempt', async () => {
      const tenant = await createTenant(server());
      const first = await runJob(tenant, { n: 1 });
      const second = await runJob(tenant, { n: 2 });
      const response = await claim(tenant, { max_jobs: 2, lease_s: 5 });
      assert.equal(response.status, 200);
      const envelopes = new Map<string, any>(
        response.body.jobs.map((envelope: any) => [envelope.job_id, envelope]),
      );
      const firstToken = envelopes.get(first).callback.token as string;
      assert.ok(envelopes.has(second));

      // Another job's completion, heartbeat or any other route: 403.
      const other = await server().post(
        `${versionPath(tenant)}/jobs/${second}/complete`,
        { status: 'success', output: {} },
        { token: firstToken },
      );
      assert.equal(other.status, 403);
      assert.match(errorMessage(other), /only complete or heartbeat its own job/);
      const otherBeat = await server().post(
        `${versionPath(tenant)}/jobs/${second}/heartbeat`,
        {},
        { token: firstToken },
      );
      assert.equal(otherBeat.status, 403);
      const read = await server().get(`${tenant.domainPath}/jobs/${first}`, { token: firstToken });
      assert.equal(read.status, 403);

      // The lease of attempt 1 runs out: the reaper puts the job back, a new claim is attempt 2.
      await server().db.query(
        `update jobs set lease_expires_at = now() - interval '1 second' where job_id = $1`,
        [first],
      );
      let retried: any;
      for (let i = 0; i < 20 && retried === undefined; i++) {
        const again = await claim(tenant, { wait_ms: 500, lease_s: 30 });
        assert.equal(again.status, 200);
        retried = again.body.jobs.find((envelope: any) => envelope.job_id === first);
      }
      assert.ok(retried, 'the expired job was not claimed again');
      assert.equal(retried.attempt, 2);
      const requeued = await getJob(tenant, first);
      assert.equal(requeued.attempt, 2);

      const stale = await server().post(
        `${versionPath(tenant)}/jobs/${first}/complete`,
        { status: 'success', output: { late: true } },
        { token: firstToken },
      );
      assert.equal(stale.status, 409);
      assert.match(errorMessage(stale), /attempt 1 .* is stale; the current attempt is 2/);
      const staleBeat = await server().post(
        `${versionPath(tenant)}/jobs/${first}/heartbeat`,
        {},
        { token: firstToken },
      );
      assert.equal(staleBeat.status, 409);

      const done = await server().post(
        `${versionPath(tenant)}/jobs/${first}/complete`,
        { status: 'success', output: { attempt: 2 } },
        { token: retried.callback.token },
      );
      assert.equal(done.status, 200, JSON.stringify(done.body));
      const finished = await getJob(tenant, first);
      assert.equal(finished.status, 'success');
      assert.deepEqual(finished.output, { attempt: 2 });
    });

    it('a heartbeat extends the lease, and status running marks the job running', async () => {
      const tenant = await createTenant(server());
      const jobId = await runJob(tenant);
      const response = await claim(tenant, { lease_s: 5 });
      const [envelope] = response.body.jobs;
      assert.equal(envelope.job_id, jobId);
      const before = await leaseOf(jobId);
      assert.ok(before.getTime() - Date.now() <= 5000);

      const beat = await server().post(
        envelope.callback.heartbeat_url.slice(server().url.length),
        { lease_s: 600 },
        { token: envelope.callback.token },
      );
      assert.equal(beat.status, 200, JSON.stringify(beat.body));
      assert.deepEqual(beat.body, { job_id: jobId, attempt: 1, status: 'dispatched' });
      const extended = await leaseOf(jobId);
      assert.ok(extended.getTime() - Date.now() > 500_000, `lease ${extended.toISOString()}`);

      const running = await server().post(
        `${versionPath(tenant)}/jobs/${jobId}/heartbeat`,
        { attempt: 1, status: 'running' },
        { token: envelope.callback.token },
      );
      assert.equal(running.status, 200, JSON.stringify(running.body));
      assert.equal(running.body.status, 'running');
      assert.equal((await getJob(tenant, jobId)).status, 'running');

      const completed = await server().post(
        envelope.callback.url.slice(server().url.length),
        { status: 'success', output: { ok: true } },
        { token: envelope.callback.token },
      );
      assert.equal(completed.status, 200);
      const afterFinal = await server().post(
        `${versionPath(tenant)}/jobs/${jobId}/heartbeat`,
        {},
        { token: envelope.callback.token },
      );
      assert.equal(afterFinal.status, 409);
      assert.match(errorMessage(afterFinal), /already final/);
    });
  },
  undefined,
  {},
);
