import assert from 'node:assert/strict';
import { it } from 'node:test';
import { finishBatch, finishDoneBatches } from '../../src/usecases/finish-batch.usecase.js';
import { assertStatus } from '../helpers/assertions.js';
import { completePath, createTenant, type Tenant } from '../helpers/fixtures.js';
import { scrapeMetrics } from '../helpers/scrape-metrics.js';
import { describeOnEachBackend, errorMessage, type TestServer } from '../helpers/test-server.js';

/**
 * Fan-in: a `batch_complete` subscription starts exactly one job when the last job of a
 * matching batch becomes final, however the last ones arrive, with the batch's counts and
 * failed services in its trigger.
 */

async function tenantWithServices(server: TestServer, count: number): Promise<Tenant> {
  const tenant = await createTenant(server, { features: [], services: {} });
  await server.db.query(
    `insert into services (client_id, domain_id, service_id, provided_features, resolved_features)
     select $1, $2, 'svc-' || lpad(g::text, 4, '0'), '{}', '{}' from generate_series(1, $3::int) g`,
    [tenant.clientId, tenant.domainId, count],
  );
  return tenant;
}

async function subscribe(server: TestServer, t: Tenant, source: Record<string, unknown>) {
  const created = await server.post(`${t.domainPath}/subscriptions`, {
    event: 'batch_complete',
    source,
    action: { assignment_key: 'default', job_type: 'training' },
    input: { combine: true },
  });
  assertStatus(created, 201);
  return created.body.subscription_id as string;
}

/** The jobs a subscription started, as stored. */
async function startedBy(server: TestServer, t: Tenant, subscriptionId: string) {
  const { rows } = await server.db.query<{ job_id: string; trigger: any; input: unknown }>(
    `select job_id, trigger, input from jobs where client_id = $1 and lineage ? $2`,
    [t.clientId, subscriptionId],
  );
  return rows;
}

async function batchJobIds(server: TestServer, batchId: string) {
  const { rows } = await server.db.query<{ job_id: string; service_id: string }>(
    'select job_id, service_id from jobs where batch_id = $1 order by service_id',
    [batchId],
  );
  return rows;
}

/** Runs `work` over `items`, `width` at a time. */
async function inParallel<T>(items: T[], width: number, work: (item: T) => Promise<void>) {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: width }, lane));
}

describeOnEachBackend('batch fan-in', (server) => {
  it('1,000 services: one job when the last completes, 50 of them at once', async () => {
    const t = await tenantWithServices(server(), 1000);
    const subscriptionId = await subscribe(server(), t, { kind: 'init' });
    const init = await server().post(`${t.domainPath}/services/init`, {});
    assertStatus(init, 202);
    const batchId = init.body.batch_id as string;
    assert.equal((await server().get(`${t.domainPath}/batches/${batchId}`)).body.total, 1000);

    const jobs = await batchJobIds(server(), batchId);
    const failing = new Set(['svc-0007', 'svc-0500', 'svc-0999']);
    const complete = async (job: { job_id: string; service_id: string }) => {
      const body = failing.has(job.service_id)
        ? { status: 'failure', error: { code: 'nan' } }
        : { status: 'success', output: { eta: 1 } };
      assertStatus(await server().post(completePath(t, job.job_id), body), 200);
    };
    // Keep one failing service among the last 50, so failures arrive in the race too.
    const last = jobs.slice(950);
    await inParallel(jobs.slice(0, 950), 8, complete);

    const before = await server().get(`${t.domainPath}/batches/${batchId}`);
    assert.deepEqual(before.body.counts, {
      queued: 50,
      dispatched: 0,
      running: 0,
      success: 948,
      failure: 2,
      cancelled: 0,
    });
    assert.equal(before.body.finished_at, null);
    assert.deepEqual(await startedBy(server(), t, subscriptionId), []);

    await Promise.all(last.map(complete));

    const started = await startedBy(server(), t, subscriptionId);
    assert.equal(started.length, 1, 'exactly one job');
    const trigger = started[0]!.trigger;
    assert.equal(trigger.subscription_id, subscriptionId);
    assert.equal(trigger.batch_id, batchId);
    assert.deepEqual(trigger.counts, {
      queued: 0,
      dispatched: 0,
      running: 0,
      success: 997,
      failure: 3,
      cancelled: 0,
    });
    assert.deepEqual(trigger.failed_services, ['svc-0007', 'svc-0500', 'svc-0999']);
    assert.deepEqual(started[0]!.input, { combine: true });

    const batch = await server().get(`${t.domainPath}/batches/${batchId}`);
    assert.notEqual(batch.body.finished_at, null);
    assert.deepEqual(batch.body.triggered_events, [
      { subscription_id: subscriptionId, job_id: started[0]!.job_id },
    ]);
    const job = await server().get(`${t.domainPath}/jobs/${started[0]!.job_id}`);
    assert.deepEqual(job.body.trigger, trigger);
    assert.equal(job.body.service_id, null, 'a domain-scope job');

    // Asking again finishes nothing and starts nothing.
    assert.equal(await finishBatch(server().ctx, t.clientId, batchId), undefined);
    assert.equal((await startedBy(server(), t, subscriptionId)).length, 1);
    const metrics = await scrapeMetrics(server().url);
    assert.ok((metrics.get('pie_batches_finished_total{kind="init"}') ?? 0) >= 1);
  });

  it('callers racing to finish one batch finish it once', async () => {
    const t = await tenantWithServices(server(), 3);
    const subscriptionId = await subscribe(server(), t, {});
    const batch = await server().post(`${t.domainPath}/jobs/batch`, {
      assignment_key: 'default',
      jobs: [{ service_id: 'svc-0001' }, { service_id: 'svc-0002' }],
    });
    // Finished behind PIE's back, so that no completion finishes the batch first.
    await server().db.query(
      `update jobs set status = 'cancelled', finished_at = now() where batch_id = $1`,
      [batch.body.batch_id],
    );
    const finishes = await Promise.all(
      Array.from({ length: 10 }, () =>
        finishBatch(server().ctx, t.clientId, batch.body.batch_id as string),
      ),
    );
    assert.equal(finishes.filter((each) => each !== undefined).length, 1);
    assert.equal((await startedBy(server(), t, subscriptionId)).length, 1);
  });

  it('a batch whose last job is cancelled is finished by the sweep', async () => {
    const t = await tenantWithServices(server(), 2);
    const subscriptionId = await subscribe(server(), t, { assignment_key: 'default' });
    const init = await server().post(`${t.domainPath}/services/init`, {});
    const [first, second] = await batchJobIds(server(), init.body.batch_id as string);
    assertStatus(await server().post(completePath(t, first!.job_id), { status: 'success' }), 200);
    assertStatus(await server().post(`${t.domainPath}/jobs/${second!.job_id}/cancel`), 200);
    assert.equal((await startedBy(server(), t, subscriptionId)).length, 0, 'a cancel waits');

    assert.ok((await finishDoneBatches(server().ctx, 100)) >= 1);
    const started = await startedBy(server(), t, subscriptionId);
    assert.equal(started.length, 1);
    assert.equal(started[0]!.trigger.counts.cancelled, 1);
    assert.equal(started[0]!.trigger.counts.success, 1);
  });

  it('fires only the subscriptions whose source matches the batch', async () => {
    const t = await tenantWithServices(server(), 1);
    const other = await createTenant(server(), { features: [] });
    const subs = {
      any: await subscribe(server(), t, {}),
      init: await subscribe(server(), t, { kind: 'init' }),
      bulk: await subscribe(server(), t, { kind: 'bulk' }),
      model: await subscribe(server(), t, { model_id: t.modelId }),
      otherModel: await subscribe(server(), t, { model_id: other.modelId }),
      otherKey: await subscribe(server(), t, { assignment_key: 'elsewhere' }),
    };
    const init = await server().post(`${t.domainPath}/services/init`, {});
    const [job] = await batchJobIds(server(), init.body.batch_id as string);
    assertStatus(await server().post(completePath(t, job!.job_id), { status: 'success' }), 200);
    const fired = Object.entries(subs)
      .filter(([, id]) => id !== undefined)
      .map(async ([name, id]) => [name, (await startedBy(server(), t, id)).length] as const);
    assert.deepEqual(Object.fromEntries(await Promise.all(fired)), {
      any: 1,
      init: 1,
      bulk: 0,
      model: 1,
      otherModel: 0,
      otherKey: 0,
    });
    // An inference completion fires no batch_complete subscription.
    const single = await server().post(`${t.domainPath}/service/svc-0001/assignments/default/jobs`);
    await server().post(completePath(t, single.body.job_id), { status: 'success' });
    assert.equal((await startedBy(server(), t, subs.any)).length, 1);
  });

  it('refuses sources that do not fit the event', async () => {
    const t = await tenantWithServices(server(), 1);
    const post = (body: Record<string, unknown>) =>
      server().post(`${t.domainPath}/subscriptions`, {
        action: { assignment_key: 'default', job_type: 'training' },
        ...body,
      });
    const versioned = await post({
      event: 'batch_complete',
      source: { model_id: t.modelId, model_version: t.version },
    });
    assertStatus(versioned, 400);
    assert.match(errorMessage(versioned), /batch_complete source names model_id, assignment_key/);
    const modelless = await post({ source: { kind: 'init' } });
    assertStatus(modelless, 400);
    assert.match(errorMessage(modelless), /inference_complete source names model_id/);
    assertStatus(await post({ event: 'batch_complete', source: { kind: 'weekly' } }), 400);
    const unknownModel = await post({ event: 'batch_complete', source: { model_id: 'nope' } });
    assertStatus(unknownModel, 422);
    const listed = await server().get(`${t.domainPath}/subscriptions`);
    assert.deepEqual(listed.body.items, []);
  });
});
