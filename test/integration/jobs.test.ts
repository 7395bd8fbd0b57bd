import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createTenant, runJobPath, uniqueId } from '../helpers/fixtures.js';
import { describeOnEachBackend, errorMessage } from '../helpers/test-server.js';

describeOnEachBackend('running jobs', (server) => {
  it('queues a job with a 12-digit id, the resolved features and the assignment config', async () => {
    const tenant = await createTenant(server(), {
      services: { 'service-1': { route: 'r1', extra: 1 } },
    });
    const run = await server().post(runJobPath(tenant.domainPath, 'service-1'), {
      job_type: 'inference',
      input: { horizon: 30 },
      subscribe: false,
    });
    assert.equal(run.status, 202);
    assert.deepEqual(Object.keys(run.body), ['job_id']);
    assert.match(run.body.job_id, /^[1-9][0-9]{11}$/);

    const job = await server().get(`${tenant.domainPath}/jobs/${run.body.job_id}`);
    assert.equal(job.status, 200);
    assert.equal(job.body.status, 'queued');
    assert.equal(job.body.service_id, 'service-1');
    assert.equal(job.body.model_id, tenant.modelId);
    assert.deepEqual(job.body.input, { horizon: 30 });
    assert.deepEqual(job.body.features, { route: 'r1', capacity: 60 });
    assert.deepEqual(job.body.lineage, []);
    assert.equal(job.body.attempt, 0);
    assert.equal(job.body.max_attempts, 5);
    assert.ok(Date.parse(job.body.deadline) - Date.parse(job.body.created_at) === 3600_000);
  });

  it('job ids are unique and do not count upwards', async () => {
    const tenant = await createTenant(server());
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const run = await server().post(runJobPath(tenant.domainPath, 'service-1'), {});
      assert.equal(run.status, 202);
      ids.push(run.body.job_id);
    }
    assert.equal(new Set(ids).size, ids.length);
    const increasing = ids.every((id, i) => i === 0 || BigInt(id) > BigInt(ids[i - 1]!));
    assert.equal(increasing, false, 'ids should not be sequential-looking');
  });

  it('checks the client, then the domain, then the service (404) before any 422', async () => {
    const tenant = await createTenant(server());
    const missingClient = await server().post(
      runJobPath('/v2/clients/nobody/domains/south_australia', 'service-1'),
      {},
    );
    assert.equal(missingClient.status, 404);
    assert.match(errorMessage(missingClient), /client "nobody"/);
    const missingDomain = await server().post(
      runJobPath(`/v2/clients/${tenant.clientId}/domains/atlantis`, 'service-1'),
      {},
    );
    assert.equal(missingDomain.status, 404);
    assert.match(errorMessage(missingDomain), /domain "atlantis"/);
    const missingService = await server().post(runJobPath(tenant.domainPath, 'ghost'), {});
    assert.equal(missingService.status, 404);
    assert.match(errorMessage(missingService), /service "ghost"/);
  });

  it('422 when the domain is inactive, the service departed, or no assignment is active', async () => {
    const tenant = await createTenant(server(), {
      services: { 'service-1': { route: 'a' }, 'service-2': { route: 'b' } },
    });
    await server().post(`${tenant.domainPath}/services/service-2/depart`);
    const departed = await server().post(runJobPath(tenant.domainPath, 'service-2'), {});
    assert.equal(departed.status, 422);
    assert.match(errorMessage(departed), /departed/);

    const noKey = await server().post(runJobPath(tenant.domainPath, 'service-1', 'retrain'), {});
    assert.equal(noKey.status, 422);
    assert.match(errorMessage(noKey), /no active assignment for key "retrain"/);

    await server().put(tenant.domainPath, { status: 'inactive' });
    const inactive = await server().post(runJobPath(tenant.domainPath, 'service-1'), {});
    assert.equal(inactive.status, 422);
    assert.match(errorMessage(inactive), /inactive/);
  });

  it('422 when the version does not support the job type, or features do not resolve', async () => {
    const tenant = await createTenant(server(), { jobTypes: ['inference'] });
    const training = await server().post(runJobPath(tenant.domainPath, 'service-1'), {
      job_type: 'training',
    });
    assert.equal(training.status, 422);
    assert.match(errorMessage(training), /does not support job_type "training"/);

    // A service-scope revision to a stricter contract that service-1 does not satisfy.
    await server().put(`/v2/models/${tenant.modelId}/versions/2.0.0`, {
      features: [{ name: 'stops', type: 'integer', required: true }],
    });
    await server().db.query(
      `insert into assignments (client_id, domain_id, service_id, scope, key, model_id, model_version)
       values ($1, $2, 'service-1', 'service', 'strict', $3, '2.0.0')`,
      [tenant.clientId, tenant.domainId, tenant.modelId],
    );
    const mismatch = await server().post(runJobPath(tenant.domainPath, 'service-1', 'strict'), {});
    assert.equal(mismatch.status, 422);
    assert.deepEqual(mismatch.body.problems, [
      { feature: 'stops', message: 'required feature is missing' },
    ]);
  });

  it("prefers the service's own revision for a key over the domain's", async () => {
    const tenant = await createTenant(server(), {
      services: { 'service-1': { route: 'a' }, 'service-2': { route: 'b' } },
    });
    await server().put(`/v2/models/${tenant.modelId}/versions/2.0.0`, {
      features: [{ name: 'route', type: 'string' }],
    });
    const own = await server().put(`${tenant.domainPath}/service/service-1/assignments/default`, {
      model_id: tenant.modelId,
      model_version: '2.0.0',
    });
    assert.equal(own.status, 201, JSON.stringify(own.body));
    const first = await server().post(runJobPath(tenant.domainPath, 'service-1'), {});
    const second = await server().post(runJobPath(tenant.domainPath, 'service-2'), {});
    const job1 = await server().get(`${tenant.domainPath}/jobs/${first.body.job_id}`);
    const job2 = await server().get(`${tenant.domainPath}/jobs/${second.body.job_id}`);
    assert.equal(job1.body.model_version, '2.0.0');
    assert.equal(job1.body.assignment_id, own.body.assignment_id);
    assert.equal(job2.body.model_version, tenant.version);
  });

  it('runs a domain-scope job with no service and no features', async () => {
    const tenant = await createTenant(server());
    const run = await server().post(`${tenant.domainPath}/assignments/default/jobs`, {
      input: { batch: true },
    });
    assert.equal(run.status, 202);
    const job = await server().get(`${tenant.domainPath}/jobs/${run.body.job_id}`);
    assert.equal(job.body.service_id, null);
    assert.equal(job.body.features, null);
    assert.deepEqual(job.body.input, { batch: true });
  });

  it('subscribe: true creates one retraining subscription; only for inference (400)', async () => {
    const tenant = await createTenant(server());
    const body = { job_type: 'inference', input: { window: 7 }, subscribe: true };
    const run = await server().post(runJobPath(tenant.domainPath, 'service-1'), body);
    assert.equal(run.status, 202);
    assert.match(run.body.subscription_id, /^[0-9a-f-]{36}$/);
    const again = await server().post(runJobPath(tenant.domainPath, 'service-1'), body);
    assert.equal(again.body.subscription_id, run.body.subscription_id, 'identical one reused');

    const { rows } = await server().db.query<Record<string, unknown>>(
      `select source_model_id, source_model_version, source_service_id, action_assignment_key,
         action_service_id, action_job_type, input, status, created_by_job_id
       from subscriptions where client_id = $1`,
      [tenant.clientId],
    );
    assert.deepEqual(rows, [
      {
        source_model_id: tenant.modelId,
        source_model_version: null,
        source_service_id: 'service-1',
        action_assignment_key: 'default',
        action_service_id: 'service-1',
        action_job_type: 'training',
        input: { window: 7 },
        status: 'active',
        created_by_job_id: run.body.job_id,
      },
    ]);

    const wrong = await server().post(runJobPath(tenant.domainPath, 'service-1'), {
      job_type: 'training',
      subscribe: true,
    });
    assert.equal(wrong.status, 400);
    assert.match(errorMessage(wrong), /only valid for inference/);
  });

  it('400 for bad bodies and paths before anything else', async () => {
    const tenant = await createTenant(server());
    const readOnly = await server().token(['read']);
    const cases: [string, unknown][] = [
      [runJobPath(tenant.domainPath, 'service-1'), { input: [] }],
      [runJobPath(tenant.domainPath, 'service-1'), { job_type: 'Inference!' }],
      [runJobPath(tenant.domainPath, 'service-1'), { subscribe: 'yes' }],
      [runJobPath(tenant.domainPath, 'service-1'), { inputs: {} }],
      [runJobPath(tenant.domainPath, 'bad id'), {}],
    ];
    for (const [path, body] of cases) {
      const response = await server().post(path, body, { token: readOnly });
      assert.equal(response.status, 400, `${path} ${JSON.stringify(body)}`);
      errorMessage(response);
    }
  });

  it('keeps jobs of archived revisions readable', async () => {
    const tenant = await createTenant(server());
    const run = await server().post(runJobPath(tenant.domainPath, 'service-1'), {});
    const retired = await server().put(`${tenant.domainPath}/assignments/default`, {
      model_id: tenant.modelId,
      model_version: tenant.version,
      status: 'archived',
    });
    assert.equal(retired.status, 200, JSON.stringify(retired.body));
    const refused = await server().post(runJobPath(tenant.domainPath, 'service-1'), {});
    assert.equal(refused.status, 422);
    const job = await server().get(`${tenant.domainPath}/jobs/${run.body.job_id}`);
    assert.equal(job.status, 200);
    const revisions = await server().get(`${tenant.domainPath}/assignments/default/revisions`);
    assert.ok(
      revisions.body.items.some(
        (revision: { assignment_id: string }) => revision.assignment_id === job.body.assignment_id,
      ),
    );
  });
});

describeOnEachBackend('reading and cancelling jobs', (server) => {
  it('lists newest first with filters and cursor pages', async () => {
    const tenant = await createTenant(server(), {
      services: { a: { route: 'a' }, b: { route: 'b' } },
    });
    const ids: string[] = [];
    for (const service of ['a', 'b', 'a', 'b', 'a']) {
      const run = await server().post(
        `${tenant.domainPath}/service/${service}/assignments/default/jobs`,
        {},
      );
      ids.push(run.body.job_id);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor === null ? '?limit=2' : `?limit=2&cursor=${cursor}`;
      const page = await server().get(`${tenant.domainPath}/jobs${query}`);
      assert.equal(page.status, 200);
      assert.ok(page.body.items.length <= 2);
      seen.push(...page.body.items.map((job: { job_id: string }) => job.job_id));
      cursor = page.body.next_cursor;
    } while (cursor !== null);
    assert.deepEqual(seen, [...ids].reverse());

    const onlyA = await server().get(`${tenant.domainPath}/jobs?service_id=a`);
    assert.deepEqual(
      onlyA.body.items.map((job: { job_id: string }) => job.job_id),
      [ids[4], ids[2], ids[0]],
    );
    const training = await server().get(`${tenant.domainPath}/jobs?job_type=training`);
    assert.deepEqual(training.body.items, []);
    const bad = await server().get(`${tenant.domainPath}/jobs?status=done`);
    assert.equal(bad.status, 400);
  });

  it('cancels an open job; a second cancel answers it again; a finished job is 409', async () => {
    const tenant = await createTenant(server());
    const run = await server().post(
      `${tenant.domainPath}/service/service-1/assignments/default/jobs`,
      {},
    );
    const cancel = await server().post(`${tenant.domainPath}/jobs/${run.body.job_id}/cancel`);
    assert.equal(cancel.status, 200);
    assert.equal(cancel.body.status, 'cancelled');
    assert.ok(cancel.body.finished_at);
    const again = await server().post(`${tenant.domainPath}/jobs/${run.body.job_id}/cancel`);
    assert.equal(again.status, 200);
    assert.equal(again.body.finished_at, cancel.body.finished_at);

    const other = await server().post(
      `${tenant.domainPath}/service/service-1/assignments/default/jobs`,
      {},
    );
    await server().post(
      `/v2/models/${tenant.modelId}/versions/${tenant.version}/jobs/${other.body.job_id}/complete`,
      { status: 'success' },
    );
    const late = await server().post(`${tenant.domainPath}/jobs/${other.body.job_id}/cancel`);
    assert.equal(late.status, 409);
    assert.match(errorMessage(late), /already finished with status "success"/);
    const missing = await server().post(`${tenant.domainPath}/jobs/999999999999/cancel`);
    assert.equal(missing.status, 404);
  });

  it("a client's token cannot see or touch another client's jobs", async () => {
    const mine = await createTenant(server());
    const theirs = await createTenant(server());
    const run = await server().post(
      `${theirs.domainPath}/service/service-1/assignments/default/jobs`,
      {},
    );
    const token = await server().token(['read', 'jobs:write', 'jobs:complete'], {
      clients: [mine.clientId],
    });
    const read = await server().get(`${theirs.domainPath}/jobs/${run.body.job_id}`, { token });
    assert.equal(read.status, 403);
    const list = await server().get(`${theirs.domainPath}/jobs`, { token });
    assert.equal(list.status, 403);
    const cancel = await server().post(
      `${theirs.domainPath}/jobs/${run.body.job_id}/cancel`,
      {},
      { token },
    );
    assert.equal(cancel.status, 403);
    const start = await server().post(
      `${theirs.domainPath}/service/service-1/assignments/default/jobs`,
      {},
      { token },
    );
    assert.equal(start.status, 403);
    const complete = await server().post(
      `/v2/models/${theirs.modelId}/versions/${theirs.version}/jobs/${run.body.job_id}/complete`,
      { status: 'success' },
      { token },
    );
    assert.equal(complete.status, 403);
    const claimed = await server().post(
      `/v2/models/${theirs.modelId}/versions/${theirs.version}/jobs/claim`,
      { worker_id: 'nosy' },
      { token },
    );
    assert.equal(claimed.status, 200);
    assert.deepEqual(claimed.body.jobs, [], "a worker of one client never gets another's jobs");
    const heartbeat = await server().post(
      `/v2/models/${theirs.modelId}/versions/${theirs.version}/jobs/${run.body.job_id}/heartbeat`,
      { attempt: 1 },
      { token },
    );
    assert.equal(heartbeat.status, 403);
    // The job id under the caller's own path is simply not there.
    const ownPath = await server().get(`${mine.domainPath}/jobs/${run.body.job_id}`, { token });
    assert.equal(ownPath.status, 404);
    const ownList = await server().get(`${mine.domainPath}/jobs`, { token });
    assert.deepEqual(ownList.body.items, []);
    const job = await server().get(`${theirs.domainPath}/jobs/${run.body.job_id}`);
    assert.equal(job.body.status, 'queued', 'untouched');
  });

  it('404 for an unknown job, 400 for a malformed job id', async () => {
    const tenant = await createTenant(server(), { assignDefault: false });
    assert.equal((await server().get(`${tenant.domainPath}/jobs/123456789012`)).status, 404);
    assert.equal((await server().get(`${tenant.domainPath}/jobs/12345`)).status, 400);
    assert.equal((await server().get(`${tenant.domainPath}/jobs/${uniqueId('x')}`)).status, 400);
  });
});
