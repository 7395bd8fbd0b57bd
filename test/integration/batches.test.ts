import assert from 'node:assert/strict';
import { it } from 'node:test';
import { assertStatus } from '../helpers/assertions.js';
import { completePath, createTenant, runJobPath, type Tenant } from '../helpers/fixtures.js';
import { describeOnEachBackend, errorMessage, type TestServer } from '../helpers/test-server.js';

/**
 * Batches: services init and `jobs/batch` start their jobs as one batch, read with counts by
 * status that follow the jobs as they move, and the jobs list filters by batch.
 */

/** A tenant without a feature contract and `count` services (`svc-1`...), made in SQL. */
async function tenantWithServices(server: TestServer, count: number): Promise<Tenant> {
  const tenant = await createTenant(server, { features: [], services: {} });
  await server.db.query(
    `insert into services (client_id, domain_id, service_id, provided_features, resolved_features)
     select $1, $2, 'svc-' || g, '{}', '{}' from generate_series(1, $3::int) g`,
    [tenant.clientId, tenant.domainId, count],
  );
  return tenant;
}

async function batchOf(server: TestServer, t: Tenant, batchId: string) {
  const batch = await server.get(`${t.domainPath}/batches/${batchId}`);
  assertStatus(batch, 200);
  return batch.body as { total: number; counts: Record<string, number>; finished_at: unknown };
}

async function batchJobs(server: TestServer, t: Tenant, batchId: string) {
  const ids: { job_id: string; service_id: string }[] = [];
  let cursor: string | null = null;
  do {
    const query: string = `?batch_id=${batchId}&limit=200${cursor ? `&cursor=${cursor}` : ''}`;
    const page = await server.get(`${t.domainPath}/jobs${query}`);
    assertStatus(page, 200);
    ids.push(...(page.body.items as { job_id: string; service_id: string }[]));
    cursor = page.body.next_cursor as string | null;
  } while (cursor !== null);
  return ids;
}

describeOnEachBackend('batches', (server) => {
  it('services init makes a batch whose counts follow its jobs', async () => {
    const t = await tenantWithServices(server(), 30);
    const init = await server().post(`${t.domainPath}/services/init`, {});
    assertStatus(init, 202);
    assert.equal(init.body.dispatched_services.length, 30);
    const batchId = init.body.batch_id as string;
    assert.match(batchId, /^[0-9a-f-]{36}$/);

    const fresh = await batchOf(server(), t, batchId);
    assert.equal(fresh.total, 30);
    assert.deepEqual(fresh.counts, {
      queued: 30,
      dispatched: 0,
      running: 0,
      success: 0,
      failure: 0,
      cancelled: 0,
    });
    assert.equal(fresh.finished_at, null);

    const jobs = await batchJobs(server(), t, batchId);
    assert.equal(jobs.length, 30);
    assert.equal(new Set(jobs.map((job) => job.service_id)).size, 30);
    for (const job of jobs.slice(0, 10)) {
      assertStatus(await server().post(completePath(t, job.job_id), { status: 'success' }), 200);
    }
    for (const job of jobs.slice(10, 13)) {
      const failed = await server().post(completePath(t, job.job_id), {
        status: 'failure',
        error: { code: 'nan' },
      });
      assertStatus(failed, 200);
    }
    assertStatus(await server().post(`${t.domainPath}/jobs/${jobs[13]!.job_id}/cancel`), 200);
    const later = await batchOf(server(), t, batchId);
    assert.deepEqual(later.counts, {
      queued: 16,
      dispatched: 0,
      running: 0,
      success: 10,
      failure: 3,
      cancelled: 1,
    });

    // A job outside the batch is not listed under it.
    const single = await server().post(runJobPath(t.domainPath, 'svc-1'), {});
    assertStatus(single, 202);
    assert.equal((await batchJobs(server(), t, batchId)).length, 30);
    const job = await server().get(`${t.domainPath}/jobs/${single.body.job_id}`);
    assert.equal(job.body.batch_id, null);
  });

  it('four workers claiming and completing one batch at once leave its counts right', async () => {
    const t = await tenantWithServices(server(), 400);
    const init = await server().post(`${t.domainPath}/services/init`, {});
    const batchId = init.body.batch_id as string;
    const claimPath = `/v2/models/${t.modelId}/versions/${t.version}/jobs/claim`;
    let done = 0;
    const worker = async (name: string) => {
      for (;;) {
        const claim = await server().post(claimPath, { worker_id: name, max_jobs: 10, wait_ms: 0 });
        assertStatus(claim, 200);
        const jobs = claim.body.jobs as { job_id: string; attempt: number }[];
        if (jobs.length === 0) return;
        await Promise.all(
          jobs.map(async (job) => {
            const body = { status: 'success', attempt: job.attempt };
            assertStatus(await server().post(completePath(t, job.job_id), body), 200);
          }),
        );
        done += jobs.length;
      }
    };
    await Promise.all(['w1', 'w2', 'w3', 'w4'].map(worker));
    assert.equal(done, 400);
    const batch = await batchOf(server(), t, batchId);
    assert.deepEqual(batch.counts, {
      queued: 0,
      dispatched: 0,
      running: 0,
      success: 400,
      failure: 0,
      cancelled: 0,
    });
    assert.notEqual(batch.finished_at, null);
  });

  it('jobs/batch starts every job or none, and lists each service that cannot run', async () => {
    const t = await tenantWithServices(server(), 500);
    await server().db.query(
      `update services set status = 'departed' where client_id = $1 and service_id = 'svc-250'`,
      [t.clientId],
    );
    const jobs = Array.from({ length: 500 }, (_, i) => ({ service_id: `svc-${i + 1}` }));
    const refused = await server().post(`${t.domainPath}/jobs/batch`, {
      assignment_key: 'default',
      jobs,
    });
    assertStatus(refused, 422);
    assert.match(errorMessage(refused), /service "svc-250" has departed/);
    assert.deepEqual(
      (refused.body.services as { service_id: string }[]).map((s) => s.service_id),
      ['svc-250'],
    );
    const { rows } = await server().db.query<{ n: number }>(
      'select count(*)::int as n from jobs where client_id = $1',
      [t.clientId],
    );
    assert.equal(rows[0]!.n, 0, 'no job was created');

    const unknown = await server().post(`${t.domainPath}/jobs/batch`, {
      assignment_key: 'default',
      jobs: [{ service_id: 'svc-1' }, { service_id: 'nowhere' }, { service_id: 'svc-250' }],
    });
    assertStatus(unknown, 422);
    assert.deepEqual(
      (unknown.body.services as { service_id: string }[]).map((s) => s.service_id),
      ['nowhere', 'svc-250'],
    );

    const started = await server().post(`${t.domainPath}/jobs/batch`, {
      assignment_key: 'default',
      job_type: 'training',
      priority: 7,
      jobs: [{ service_id: 'svc-1', input: { n: 1 } }, { service_id: 'svc-2' }],
    });
    assertStatus(started, 202);
    const [first, second] = started.body.job_ids as string[];
    const job = await server().get(`${t.domainPath}/jobs/${first}`);
    assert.equal(job.body.batch_id, started.body.batch_id);
    assert.equal(job.body.service_id, 'svc-1');
    assert.equal(job.body.job_type, 'training');
    assert.equal(job.body.priority, 7);
    assert.deepEqual(job.body.input, { n: 1 });
    assert.equal((await server().get(`${t.domainPath}/jobs/${second}`)).body.service_id, 'svc-2');
    const batch = await server().get(`${t.domainPath}/batches/${started.body.batch_id}`);
    assert.equal(batch.body.kind, 'bulk');
    assert.equal(batch.body.total, 2);
    assert.equal(batch.body.model_id, t.modelId);
  });

  it('names the version a batch ran on only when every job ran on it', async () => {
    const t = await tenantWithServices(server(), 3);
    // svc-2 runs on its own revision: the same model, another version.
    assertStatus(
      await server().put(`/v2/models/${t.modelId}/versions/2.0.0`, { features: [] }),
      201,
    );
    assertStatus(
      await server().put(`${t.domainPath}/service/svc-2/assignments/default`, {
        model_id: t.modelId,
        model_version: '2.0.0',
      }),
      201,
    );
    const start = async (services: string[]) => {
      const started = await server().post(`${t.domainPath}/jobs/batch`, {
        assignment_key: 'default',
        jobs: services.map((service_id) => ({ service_id })),
      });
      assertStatus(started, 202);
      const batch = await server().get(`${t.domainPath}/batches/${started.body.batch_id}`);
      assertStatus(batch, 200);
      return [batch.body.model_id, batch.body.model_version] as const;
    };
    assert.deepEqual(await start(['svc-1', 'svc-3']), [t.modelId, '1.0.0']);
    assert.deepEqual(await start(['svc-2']), [t.modelId, '2.0.0']);
    assert.deepEqual(await start(['svc-1', 'svc-2', 'svc-3']), [null, null]);
    const init = await server().post(`${t.domainPath}/services/init`, {});
    assertStatus(init, 202);
    const initBatch = await server().get(`${t.domainPath}/batches/${init.body.batch_id}`);
    assert.equal(initBatch.body.total, 3);
    assert.deepEqual([initBatch.body.model_id, initBatch.body.model_version], [t.modelId, '1.0.0']);
  });

  it('answers clear errors for bad batches and unknown ones', async () => {
    const t = await tenantWithServices(server(), 2);
    const path = `${t.domainPath}/jobs/batch`;
    assertStatus(await server().post(path, { assignment_key: 'default', jobs: [] }), 400);
    assertStatus(await server().post(path, { jobs: [{ service_id: 'svc-1' }] }), 400);
    const noKey = await server().post(path, {
      assignment_key: 'nothing',
      jobs: [{ service_id: 'svc-1' }],
    });
    assertStatus(noKey, 422);
    assert.match(errorMessage(noKey), /no active assignment for key "nothing"/);
    const missing = await server().get(
      `${t.domainPath}/batches/00000000-0000-4000-8000-000000000000`,
    );
    assertStatus(missing, 404);
    assertStatus(await server().get(`${t.domainPath}/batches/not-a-uuid`), 400);
    assertStatus(await server().get(`${t.domainPath}/jobs?batch_id=nope`), 400);
    assertStatus(await server().get(`${t.domainPath}/batches?cursor=bm9wZQ`), 400);
  });

  it('lists batches newest first, a page at a time, by kind', async () => {
    const t = await tenantWithServices(server(), 3);
    const made: string[] = [];
    for (let i = 0; i < 3; i++) {
      const init = await server().post(`${t.domainPath}/services/init`, {});
      made.push(init.body.batch_id as string);
    }
    const bulk = await server().post(`${t.domainPath}/jobs/batch`, {
      assignment_key: 'default',
      jobs: [{ service_id: 'svc-1' }],
    });
    made.push(bulk.body.batch_id as string);
    const first = await server().get(`${t.domainPath}/batches?limit=2`);
    assertStatus(first, 200);
    const second = await server().get(
      `${t.domainPath}/batches?limit=2&cursor=${first.body.next_cursor}`,
    );
    const listed = [...first.body.items, ...second.body.items].map(
      (b: { batch_id: string }) => b.batch_id,
    );
    assert.deepEqual(listed, [...made].reverse());
    assert.equal(second.body.next_cursor, null);
    const inits = await server().get(`${t.domainPath}/batches?kind=init`);
    assert.equal(inits.body.items.length, 3);
  });
});
