import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { testBackends } from '../helpers/backends.js';
import { assertStatus, expectBody } from '../helpers/assertions.js';
import {
  completePath,
  createTenant,
  runJob,
  trainingJobs,
  type Tenant,
} from '../helpers/fixtures.js';
import { describeOnEachBackend, errorMessage, TestServer } from '../helpers/test-server.js';
import { waitFor } from '../helpers/wait.js';

/**
 * `POST /v2/models/{m}/versions/{v}/jobs/complete`: a worker completes the jobs it claimed in
 * one request, and each gets exactly what the single completion route would have answered.
 */

interface Claimed {
  job_id: string;
  attempt: number;
  callback: { token: string };
}

interface Result {
  job_id: string;
  status_code: number;
  body: any;
}

const versionPath = (t: Tenant) => `/v2/models/${t.modelId}/versions/${t.version}`;

async function claim(server: TestServer, t: Tenant, count: number): Promise<Claimed[]> {
  const answer = await server.post(`${versionPath(t)}/jobs/claim`, {
    worker_id: 'many-worker',
    max_jobs: count,
    wait_ms: 0,
  });
  return expectBody<{ jobs: Claimed[] }>(answer, 200).jobs;
}

async function completeMany(server: TestServer, t: Tenant, completions: unknown[], token?: string) {
  return server.post(
    `${versionPath(t)}/jobs/complete`,
    { completions },
    token === undefined ? undefined : { token },
  );
}

async function statusOf(server: TestServer, t: Tenant, jobId: string) {
  return expectBody<{ status: string; output: unknown; error: unknown }>(
    await server.get(`${t.domainPath}/jobs/${jobId}`),
    200,
  );
}

describeOnEachBackend('completing many jobs in one request', (server) => {
  it('completes each as the single route would, in order, and a repeat replays', async () => {
    const t = await createTenant(server());
    const subscription = expectBody<{ subscription_id: string }>(
      await server().post(`${t.domainPath}/subscriptions`, {
        source: { model_id: t.modelId },
        action: { assignment_key: 'default', job_type: 'training' },
      }),
      201,
    );
    for (let i = 0; i < 4; i++) await runJob(server(), t, { input: { i } });
    const jobs = await claim(server(), t, 10);
    assert.equal(jobs.length, 4);
    const [a, b, c, d] = jobs as [Claimed, Claimed, Claimed, Claimed];
    const completions = [
      { job_id: a.job_id, attempt: a.attempt, status: 'success', output: { n: 1 } },
      { job_id: b.job_id, attempt: b.attempt, status: 'failure', error: { code: 'oom' } },
      { job_id: c.job_id, attempt: c.attempt + 1, status: 'success' },
      { job_id: '999999999999', status: 'success' },
      { job_id: d.job_id, status: 'success', output: { n: 4 } },
    ];
    const first = expectBody<{ results: Result[] }>(
      await completeMany(server(), t, completions),
      200,
    );
    assert.deepEqual(
      first.results.map((r) => [r.job_id, r.status_code]),
      [
        [a.job_id, 200],
        [b.job_id, 200],
        [c.job_id, 409],
        ['999999999999', 404],
        [d.job_id, 200],
      ],
    );
    // Each body is the single route's: the completion, or its error.
    assert.deepEqual(first.results[0]!.body.triggered_events.length, 1);
    assert.equal(
      first.results[0]!.body.triggered_events[0].subscription_id,
      subscription.subscription_id,
    );
    assert.deepEqual(first.results[1]!.body.triggered_events, [], 'a failure fires nothing');
    assert.equal(first.results[2]!.body.success, false);
    assert.match(first.results[2]!.body.message, /is stale; the current attempt is/);
    assert.match(first.results[3]!.body.message, /job "999999999999" not found for model/);

    assert.deepEqual((await statusOf(server(), t, a.job_id)).output, { n: 1 });
    assert.deepEqual((await statusOf(server(), t, b.job_id)).error, { code: 'oom' });
    assert.equal((await statusOf(server(), t, c.job_id)).status, 'dispatched', 'untouched');
    assert.equal((await statusOf(server(), t, d.job_id)).status, 'success');
    assert.equal((await trainingJobs(server(), t)).length, 2, 'one per successful inference');

    // The same request again: the completed ones replay their first answers, nothing fires.
    const again = expectBody<{ results: Result[] }>(
      await completeMany(server(), t, completions),
      200,
    );
    assert.deepEqual(
      again.results.map((r) => r.status_code),
      [200, 200, 409, 404, 200],
    );
    assert.deepEqual(again.results[0]!.body, first.results[0]!.body);
    assert.equal((await trainingJobs(server(), t)).length, 2);
    // And the single route agrees with what the batch recorded.
    const single = await server().post(completePath(t, a.job_id), {
      status: 'success',
      output: { n: 1 },
    });
    assertStatus(single, 200);
    assert.deepEqual(single.body, first.results[0]!.body);
    const differently = await server().post(completePath(t, d.job_id), { status: 'failure' });
    assertStatus(differently, 409);
  });

  it('refuses a job named twice, too many, a read token and a callback token, changing nothing', async () => {
    const t = await createTenant(server());
    await runJob(server(), t);
    const [job] = (await claim(server(), t, 1)) as [Claimed];
    const twice = await completeMany(server(), t, [
      { job_id: job.job_id, status: 'success' },
      { job_id: job.job_id, status: 'failure' },
    ]);
    assertStatus(twice, 400);
    assert.match(errorMessage(twice), /appears twice/);
    const many = Array.from({ length: 101 }, (_, i) => ({
      job_id: String(100000000000 + i),
      status: 'success',
    }));
    assertStatus(await completeMany(server(), t, many), 400);
    assertStatus(await completeMany(server(), t, []), 400);
    const read = await server().token(['read']);
    assertStatus(
      await completeMany(server(), t, [{ job_id: job.job_id, status: 'success' }], read),
      403,
    );
    const otherModel = await server().token(['jobs:complete'], { models: ['another-model'] });
    assertStatus(
      await completeMany(server(), t, [{ job_id: job.job_id, status: 'success' }], otherModel),
      403,
    );
    // A job's callback token completes that job on the single route only.
    const byCallback = await completeMany(
      server(),
      t,
      [{ job_id: job.job_id, status: 'success' }],
      job.callback.token,
    );
    assertStatus(byCallback, 403);
    const { rows } = await server().db.query<{ status: string }>(
      'select status from jobs where job_id = $1',
      [job.job_id],
    );
    assert.equal(rows[0]!.status, 'dispatched', 'nothing was completed');
  });

  it('answers 409 for an attempt past any integer, never a 500, and the job stays open', async () => {
    const t = await createTenant(server());
    const jobId = await runJob(server(), t);
    await claim(server(), t, 1);
    for (const attempt of [2 ** 31, 1e300]) {
      const answer = expectBody<{ results: Result[] }>(
        await completeMany(server(), t, [{ job_id: jobId, attempt, status: 'success' }]),
        200,
      );
      assert.equal(answer.results[0]!.status_code, 409, JSON.stringify(answer.results[0]));
      assert.match(answer.results[0]!.body.message, /is stale/);
    }
    assert.equal((await statusOf(server(), t, jobId)).status, 'dispatched');
  });

  it("answers 403 in a job's result when the token may not act on its client", async () => {
    const t = await createTenant(server());
    const jobId = await runJob(server(), t);
    await claim(server(), t, 1);
    const elsewhere = await server().token(['jobs:complete'], { clients: ['someone-else'] });
    const answer = expectBody<{ results: Result[] }>(
      await completeMany(server(), t, [{ job_id: jobId, status: 'success' }], elsewhere),
      200,
    );
    assert.equal(answer.results[0]!.status_code, 403);
    assert.match(answer.results[0]!.body.message, /may not act on client/);
    assert.equal((await statusOf(server(), t, jobId)).status, 'dispatched');
  });
  it('completes a claimed batch together: its batch ends once, its events and counts follow', async () => {
    const t = await createTenant(server(), { features: [], services: {} });
    await server().db.query(
      `insert into services (client_id, domain_id, service_id, provided_features, resolved_features)
       select $1, $2, 'svc-' || g, '{}', '{}' from generate_series(1, 40) g`,
      [t.clientId, t.domainId],
    );
    const subscription = expectBody<{ subscription_id: string }>(
      await server().post(`${t.domainPath}/subscriptions`, {
        event: 'batch_complete',
        source: {},
        action: { assignment_key: 'default', job_type: 'training' },
      }),
      201,
    );
    const init = expectBody<{ batch_id: string }>(
      await server().post(`${t.domainPath}/services/init`, {}),
      202,
    );
    const jobs = await claim(server(), t, 50);
    assert.equal(jobs.length, 40);
    const answer = expectBody<{ results: Result[] }>(
      await completeMany(
        server(),
        t,
        jobs.map((job, i) =>
          i % 4 === 0
            ? { job_id: job.job_id, attempt: job.attempt, status: 'failure', error: { i } }
            : { job_id: job.job_id, attempt: job.attempt, status: 'success', output: { i } },
        ),
      ),
      200,
    );
    assert.deepEqual(
      answer.results.map((r) => [r.job_id, r.status_code, r.body.status]),
      jobs.map((job, i) => [job.job_id, 200, i % 4 === 0 ? 'failure' : 'success']),
    );
    const { rows } = await server().db.query<{
      job_id: string;
      status: string;
      output: any;
      error: any;
    }>('select job_id, status, output, error from jobs where batch_id = $1', [init.batch_id]);
    const stored = new Map(rows.map((row) => [row.job_id, row]));
    jobs.forEach((job, i) => {
      const row = stored.get(job.job_id)!;
      assert.equal(row.status, i % 4 === 0 ? 'failure' : 'success');
      assert.deepEqual(i % 4 === 0 ? row.error : row.output, { i });
      assert.equal(i % 4 === 0 ? row.output : row.error, null);
    });
    const batch = expectBody<{ counts: Record<string, number>; finished_at: string | null }>(
      await server().get(`${t.domainPath}/batches/${init.batch_id}`),
      200,
    );
    assert.equal(batch.counts['success'], 30);
    assert.equal(batch.counts['failure'], 10);
    assert.notEqual(batch.finished_at, null, 'the request that ended the batch finished it');
    const started = await server().db.query(
      'select job_id from jobs where client_id = $1 and lineage ? $2',
      [t.clientId, subscription.subscription_id],
    );
    assert.equal(started.rows.length, 1, 'the batch_complete subscription fired once');
    // Each completion is a finished change in the job's events, as on the single route. The
    // events show once the log has numbered them (up to a sequencer turn later): number now.
    await server().db.query('select pie_sequence_job_events(100000)');
    const events = expectBody<{ items: { status: string }[] }>(
      await server().get(`${t.domainPath}/jobs/${jobs[1]!.job_id}/events`),
      200,
    );
    assert.equal(events.items.at(-1)?.status, 'success');
  });

  it('requests racing over the same jobs complete each once, and a cancel wins or loses whole', async () => {
    const t = await createTenant(server());
    for (let i = 0; i < 30; i++) await runJob(server(), t, { input: { i } });
    const jobs = await claim(server(), t, 30);
    const succeed = jobs.map((job) => ({
      job_id: job.job_id,
      status: 'success',
      output: { ok: 1 },
    }));
    const fail = jobs.map((job) => ({ job_id: job.job_id, status: 'failure' }));
    const [a, b, c] = await Promise.all([
      completeMany(server(), t, succeed),
      completeMany(server(), t, succeed),
      completeMany(server(), t, fail),
      server().post(`${t.domainPath}/jobs/cancel`, { status: 'dispatched', limit: 10 }),
    ]);
    const results = [a, b, c].map(
      (answer) => expectBody<{ results: Result[] }>(answer, 200).results,
    );
    const { rows } = await server().db.query<{ job_id: string; status: string }>(
      'select job_id, status from jobs where job_id = any($1::text[])',
      [jobs.map((job) => job.job_id)],
    );
    const final = new Map(rows.map((row) => [row.job_id, row.status]));
    jobs.forEach((job, i) => {
      const status = final.get(job.job_id)!;
      const [bySuccess, bySuccessToo, byFailure] = results.map((each) => each[i]!.status_code);
      // Whatever won, every answer agrees with what is stored: 200 only for that outcome.
      assert.equal(bySuccess, status === 'success' ? 200 : 409, `job ${i} (${status})`);
      assert.equal(bySuccessToo, status === 'success' ? 200 : 409, `job ${i} (${status})`);
      assert.equal(byFailure, status === 'failure' ? 200 : 409, `job ${i} (${status})`);
    });
    assert.ok(
      [...final.values()].every((status) => ['success', 'failure', 'cancelled'].includes(status)),
    );
  });
});

// A deadlock needs two connections, which only PostgreSQL has (PGlite runs one transaction at
// a time), so this one runs on the server backend alone.
for (const backend of testBackends().filter((each) => each.name === 'postgres')) {
  describe(`completing many jobs in one request, after a deadlock [${backend.name}]`, () => {
    let server: TestServer;
    before(async () => {
      server = await TestServer.start(backend);
    });
    after(async () => {
      await server.close();
    });

    it('completes one at a time what the rolled-back transaction held', async () => {
      const t = await createTenant(server);
      for (let i = 0; i < 3; i++) await runJob(server, t, { input: { i } });
      const jobs = (await claim(server, t, 3)).sort((x, y) => (x.job_id < y.job_id ? -1 : 1));
      const [first, second] = jobs as [Claimed, Claimed, Claimed];
      // Another session holds the second job, so the request locks the first and waits.
      const other = new pg.Client({ connectionString: server.databaseUrl });
      await other.connect();
      try {
        // Its own deadlock check comes late, so the request's transaction is the one
        // PostgreSQL rolls back when the two wait for each other.
        await other.query("set deadlock_timeout = '20s'");
        await other.query('begin');
        await other.query('select 1 from jobs where job_id = $1 for update', [second.job_id]);
        const request = completeMany(
          server,
          t,
          jobs.map((job) => ({ job_id: job.job_id, status: 'success' })),
        );
        await waitFor(
          'the request waiting for the held job',
          async () => {
            const { rows } = await other.query(
              "select 1 from pg_locks where not granted and locktype = 'transactionid'",
            );
            return rows.length > 0;
          },
          10_000,
        );
        await other.query('select 1 from jobs where job_id = $1 for update', [first.job_id]);
        await other.query('commit');
        const answer = expectBody<{ results: Result[] }>(await request, 200);
        assert.deepEqual(
          answer.results.map((r) => r.status_code),
          [200, 200, 200],
        );
        const { rows } = await server.db.query<{ status: string }>(
          'select status from jobs where job_id = any($1::text[])',
          [jobs.map((job) => job.job_id)],
        );
        assert.deepEqual(
          rows.map((row) => row.status),
          ['success', 'success', 'success'],
        );
      } finally {
        await other.end();
      }
    });
  });
}
