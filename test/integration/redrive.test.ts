import assert from 'node:assert/strict';
import { it } from 'node:test';
import { assertStatus } from '../helpers/assertions.js';
import { completePath, createTenant, runJob, type Tenant } from '../helpers/fixtures.js';
import { describeOnEachBackend, type TestServer } from '../helpers/test-server.js';

/** Final jobs never change: failed or cancelled work is run again as new jobs (`retry_of`). */

/** Runs `count` jobs and fails each through the completion route with `code`. */
async function failJobs(server: TestServer, tenant: Tenant, count: number, code: string) {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const id = await runJob(server, tenant, { input: { n: i, code } });
    const done = await server.post(completePath(tenant, id), {
      status: 'failure',
      error: { code, message: 'the model returned NaN' },
    });
    assertStatus(done, 200);
    ids.push(id);
  }
  return ids;
}

async function jobOf(server: TestServer, tenant: Tenant, id: string) {
  const job = await server.get(`${tenant.domainPath}/jobs/${id}`);
  assertStatus(job, 200);
  return job.body as Record<string, unknown>;
}

/** `pie_jobs_redriven_total` for inference jobs, from the server's /metrics. */
async function redriven(server: TestServer): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = /^pie_jobs_redriven_total\{job_type="inference"\} (\d+)$/m.exec(text);
  return line === null ? 0 : Number(line[1]);
}

describeOnEachBackend('redrive', (server) => {
  it('bulk retry by error_code starts one new job per match; a replayed key starts none', async () => {
    const tenant = await createTenant(server());
    const bad = await failJobs(server(), tenant, 20, 'bad_weights');
    const other = await failJobs(server(), tenant, 3, 'oom');
    const before = await Promise.all(bad.map((id) => jobOf(server(), tenant, id)));
    const redrivenBefore = await redriven(server());

    const request = () =>
      server().post(
        `${tenant.domainPath}/jobs/retry`,
        { error_code: 'bad_weights' },
        { headers: { 'idempotency-key': 'redrive-1' } },
      );
    const retried = await request();
    assertStatus(retried, 202);
    assert.equal(retried.body.count, 20);
    assert.equal(retried.body.job_ids.length, 20);

    const fresh = await Promise.all(
      (retried.body.job_ids as string[]).map((id) => jobOf(server(), tenant, id)),
    );
    assert.deepEqual(fresh.map((job) => job['retry_of']).sort(), [...bad].sort());
    for (const job of fresh) {
      const original = before.find((each) => each['job_id'] === job['retry_of'])!;
      assert.equal(job['status'], 'queued');
      assert.equal(job['attempt'], 0);
      assert.deepEqual(job['input'], original['input']);
      assert.deepEqual(job['features'], original['features']);
      assert.equal(job['assignment_id'], original['assignment_id']);
    }
    const after = await Promise.all(bad.map((id) => jobOf(server(), tenant, id)));
    assert.deepEqual(after, before, 'the originals are untouched');
    for (const id of other) assert.equal((await jobOf(server(), tenant, id))['status'], 'failure');

    const replay = await request();
    assertStatus(replay, 202);
    assert.deepEqual(replay.body, retried.body);
    const { rows } = await server().db.query<{ n: number }>(
      'select count(*)::int as n from jobs where client_id = $1 and retry_of is not null',
      [tenant.clientId],
    );
    assert.equal(rows[0]!.n, 20, 'the replay started nothing new');
    assert.equal((await redriven(server())) - redrivenBefore, 20, 'pie_jobs_redriven_total');
  });

  it('retries one failed job; a job that is not failed or cancelled is a 409', async () => {
    const tenant = await createTenant(server());
    const [failed] = await failJobs(server(), tenant, 1, 'oom');
    const retry = await server().post(`${tenant.domainPath}/jobs/${failed}/retry`, {});
    assertStatus(retry, 202);
    const job = await jobOf(server(), tenant, retry.body.job_id as string);
    assert.equal(job['retry_of'], failed);

    const queued = await runJob(server(), tenant);
    const refused = await server().post(`${tenant.domainPath}/jobs/${queued}/retry`, {});
    assertStatus(refused, 409);
    assert.match(refused.body.message as string, /is queued; only failure or cancelled/);
    const missing = await server().post(`${tenant.domainPath}/jobs/999999999999/retry`, {});
    assertStatus(missing, 404);
  });

  it('bulk cancel cancels the open jobs a filter matches, and no other', async () => {
    const tenant = await createTenant(server(), { jobTypes: ['inference', 'training'] });
    const inference = [await runJob(server(), tenant), await runJob(server(), tenant)];
    const training = await runJob(server(), tenant, { job_type: 'training' });
    const [failed] = await failJobs(server(), tenant, 1, 'oom');

    const cancelled = await server().post(`${tenant.domainPath}/jobs/cancel`, {
      job_type: 'inference',
    });
    assertStatus(cancelled, 200);
    assert.deepEqual([...cancelled.body.job_ids].sort(), [...inference].sort());
    for (const id of inference) {
      assert.equal((await jobOf(server(), tenant, id))['status'], 'cancelled');
    }
    assert.equal((await jobOf(server(), tenant, training))['status'], 'queued');
    assert.equal((await jobOf(server(), tenant, failed!))['status'], 'failure');

    const again = await server().post(`${tenant.domainPath}/jobs/retry`, { status: 'cancelled' });
    assertStatus(again, 202);
    assert.equal(again.body.count, 2);
  });

  it('refuses bad filters with a 400 naming the field', async () => {
    const tenant = await createTenant(server());
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['retry', { status: 'queued' }, /status/],
      ['cancel', { status: 'failure' }, /status/],
      ['retry', { limit: 10_001 }, /limit/],
      ['retry', { finished_after: 'yesterday' }, /finished_after/],
      ['cancel', { colour: 'red' }, /colour/],
    ];
    for (const [action, body, field] of cases) {
      const response = await server().post(`${tenant.domainPath}/jobs/${action}`, body);
      assertStatus(response, 400);
      assert.match(response.body.message as string, field);
    }
  });
});
