import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createTenant } from '../helpers/fixtures.js';
import { describeOnEachBackend, errorMessage } from '../helpers/test-server.js';

describeOnEachBackend('services init', (server) => {
  it('starts one inference job per non-departed service with its stored features', async () => {
    const tenant = await createTenant(server(), {
      services: { a: { route: 'ra' }, b: { route: 'rb', capacity: 90 }, c: { route: 'rc' } },
    });
    await server().post(`${tenant.domainPath}/services/b/depart`);
    const before = await server().get(`${tenant.domainPath}/services`);

    const init = await server().post(`${tenant.domainPath}/services/init`);
    assert.equal(init.status, 202);
    assert.deepEqual(init.body.dispatched_services, ['a', 'c']);
    const batch = await server().get(`${tenant.domainPath}/batches/${init.body.batch_id}`);
    assert.equal(batch.body.total, 2);
    assert.equal(batch.body.kind, 'init');

    const jobs = await server().get(`${tenant.domainPath}/jobs?job_type=inference`);
    const byService = new Map(
      jobs.body.items.map((job: { service_id: string }) => [job.service_id, job]),
    );
    assert.equal(jobs.body.items.length, 2);
    assert.deepEqual((byService.get('a') as { features: unknown }).features, {
      route: 'ra',
      capacity: 60,
    });
    const jobC = byService.get('c') as Record<string, unknown>;
    assert.deepEqual(jobC['input'], {});
    assert.equal(jobC['assignment_key'], 'default');
    assert.equal(jobC['status'], 'queued');

    const after = await server().get(`${tenant.domainPath}/services`);
    assert.deepEqual(after.body, before.body, 'init changes no features');
  });

  it('uses the stored resolved_features, not a fresh resolution', async () => {
    const tenant = await createTenant(server(), { services: { a: { route: 'stored' } } });
    // Bypass the API to make provided and resolved disagree: init must send the resolved ones.
    await server().db.query(
      `update services set provided_features = '{"route": "changed"}' where client_id = $1`,
      [tenant.clientId],
    );
    await server().post(`${tenant.domainPath}/services/init`);
    const jobs = await server().get(`${tenant.domainPath}/jobs`);
    assert.deepEqual(jobs.body.items[0].features, { route: 'stored', capacity: 60 });
  });

  it('answers an empty list for a domain with no active services', async () => {
    const tenant = await createTenant(server(), { services: {} });
    const init = await server().post(`${tenant.domainPath}/services/init`);
    assert.equal(init.status, 202);
    // No jobs, no batch: nothing would ever finish it.
    assert.deepEqual(init.body, { dispatched_services: [], batch_id: null });
    const batches = await server().get(`${tenant.domainPath}/batches`);
    assert.deepEqual(batches.body.items, []);
  });

  it('422 without an active default or in an inactive domain; 404 for unknown paths', async () => {
    const noDefault = await createTenant(server(), { assignDefault: false });
    const refused = await server().post(`${noDefault.domainPath}/services/init`);
    assert.equal(refused.status, 422);
    assert.match(errorMessage(refused), /no active assignment for key "default"/);

    const inactive = await createTenant(server());
    await server().put(inactive.domainPath, { status: 'inactive' });
    const stopped = await server().post(`${inactive.domainPath}/services/init`);
    assert.equal(stopped.status, 422);
    assert.match(errorMessage(stopped), /inactive/);
    const { rows } = await server().db.query('select 1 from jobs where client_id = $1', [
      inactive.clientId,
    ]);
    assert.equal(rows.length, 0);

    const missing = await server().post(
      `/v2/clients/${inactive.clientId}/domains/nowhere/services/init`,
    );
    assert.equal(missing.status, 404);
    assert.match(errorMessage(missing), /domain "nowhere"/);
  });

  it('a retired default stops init', async () => {
    const tenant = await createTenant(server());
    await server().put(`${tenant.domainPath}/assignments/default`, {
      model_id: tenant.modelId,
      model_version: tenant.version,
      status: 'archived',
    });
    assert.equal((await server().post(`${tenant.domainPath}/services/init`)).status, 422);
  });
});
