import assert from 'node:assert/strict';
import { it } from 'node:test';
import { assertStatus } from '../helpers/assertions.js';
import { completePath, createTenant, type Tenant, trainingJobs } from '../helpers/fixtures.js';
import { scrapeMetrics } from '../helpers/scrape-metrics.js';
import { describeOnEachBackend, errorMessage, type TestServer } from '../helpers/test-server.js';

/**
 * Debounced subscriptions: completions within `debounce_s` of the first join one job, also
 * when they arrive together, and each reports that job; a completion after the window starts
 * the next one.
 */

async function queueInference(server: TestServer, t: Tenant, count: number): Promise<string[]> {
  const started = await server.post(`${t.domainPath}/jobs/batch`, {
    assignment_key: 'default',
    jobs: Array.from({ length: count }, (_, i) => ({ service_id: 'service-1', input: { i } })),
  });
  assertStatus(started, 202);
  return started.body.job_ids as string[];
}

describeOnEachBackend('debounced subscriptions', (server) => {
  it('completions within the window join one job; after it, the next starts another', async () => {
    const t = await createTenant(server());
    // A wide window, so that a slow machine stays inside it; the timed suite checks the
    // two-second window of SPEC (test/reliability/timed/debounce-burst.test.ts).
    const created = await server().post(`${t.domainPath}/subscriptions`, {
      source: { model_id: t.modelId },
      action: { assignment_key: 'default', job_type: 'training' },
      debounce_s: 600,
    });
    assertStatus(created, 201);
    assert.equal(created.body.debounce_s, 600);
    const subscriptionId = created.body.subscription_id as string;
    const jobIds = await queueInference(server(), t, 201);
    const burst = jobIds.slice(0, 200);

    const answers: unknown[][] = [];
    for (let i = 0; i < burst.length; i += 20) {
      const group = burst.slice(i, i + 20).map(async (jobId, j) => {
        const done = await server().post(completePath(t, jobId), {
          status: 'success',
          output: { n: i + j },
        });
        assertStatus(done, 200);
        return done.body.triggered_events as unknown[];
      });
      answers.push(...(await Promise.all(group)));
    }

    const training = await trainingJobs(server(), t);
    assert.equal(training.length, 1, 'one job for the burst');
    const job = training[0]!;
    assert.equal(job.trigger.subscription_id, subscriptionId);
    assert.equal(job.trigger.count, 200);
    assert.deepEqual([...job.trigger.job_ids].sort(), [...burst].sort());
    const ns = job.trigger.outputs.map((output: { n: number }) => output.n);
    assert.deepEqual(
      [...ns].sort((a: number, b: number) => a - b),
      Array.from({ length: 200 }, (_, i) => i),
    );
    // Outputs pair with job ids, in the order the completions joined.
    const n0 = burst.indexOf(job.trigger.job_ids[0]);
    assert.equal(ns[0], n0);
    for (const events of answers) {
      assert.deepEqual(events, [{ subscription_id: subscriptionId, job_id: job.job_id }]);
    }
    const read = await server().get(`${t.domainPath}/jobs/${job.job_id}`);
    assert.equal(read.body.status, 'queued');
    assert.deepEqual(read.body.trigger, job.trigger);
    const due = new Date(read.body.created_at).getTime() + 600_000;
    assert.ok(Math.abs(job.run_at.getTime() - due) < 5000, 'due debounce_s after the first');
    const metrics = await scrapeMetrics(server().url);
    assert.ok((metrics.get('pie_debounced_joins_total') ?? 0) >= 199);

    // The window ends (brought forward here): the next completion starts another job.
    await server().db.query(
      `update jobs set run_at = now() - interval '1 second' where job_id = $1`,
      [job.job_id],
    );
    const late = await server().post(completePath(t, jobIds[200]!), { status: 'success' });
    assertStatus(late, 200);
    const after = await trainingJobs(server(), t);
    assert.equal(after.length, 2);
    assert.equal(after[0]!.trigger.count, 200, 'the first job took no more');
    assert.equal(after[1]!.trigger.count, 1);
    assert.deepEqual(late.body.triggered_events, [
      { subscription_id: subscriptionId, job_id: after[1]!.job_id },
    ]);
  });

  it('a claimed gathering job takes no more completions', async () => {
    const t = await createTenant(server());
    await server().post(`${t.domainPath}/subscriptions`, {
      source: { model_id: t.modelId },
      action: { assignment_key: 'default', job_type: 'training' },
      debounce_s: 600,
    });
    const [first, second] = await queueInference(server(), t, 2);
    await server().post(completePath(t, first!), { status: 'success' });
    const [gathering] = await trainingJobs(server(), t);
    // A worker took it early (its run_at moved by hand): the next completion starts a new one.
    await server().db.query(`update jobs set run_at = now() where job_id = $1`, [
      gathering!.job_id,
    ]);
    const claim = await server().post(`/v2/models/${t.modelId}/versions/${t.version}/jobs/claim`, {
      worker_id: 'w',
      max_jobs: 10,
      wait_ms: 0,
    });
    const claimed = (claim.body.jobs as { job_id: string }[]).map((job) => job.job_id);
    assert.ok(claimed.includes(gathering!.job_id), 'the worker took the gathering job');
    await server().post(completePath(t, second!), { status: 'success' });
    const training = await trainingJobs(server(), t);
    assert.equal(training.length, 2);
    assert.equal(training[0]!.trigger.count, 1, 'the claimed job was not changed');
  });

  it('refuses debounce_s out of range or on batch_complete', async () => {
    const t = await createTenant(server());
    const post = (body: Record<string, unknown>) =>
      server().post(`${t.domainPath}/subscriptions`, {
        action: { assignment_key: 'default', job_type: 'training' },
        ...body,
      });
    assertStatus(await post({ source: { model_id: t.modelId }, debounce_s: -1 }), 400);
    assertStatus(await post({ source: { model_id: t.modelId }, debounce_s: 86_401 }), 400);
    const batch = await post({ event: 'batch_complete', source: {}, debounce_s: 5 });
    assertStatus(batch, 400);
    assert.match(errorMessage(batch), /debounce_s applies to inference_complete/);
  });
});
