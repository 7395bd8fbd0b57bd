import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createTenant, ROUTE_CONTRACT, runJobPath, uniqueId } from '../helpers/fixtures.js';
import { describeOnEachBackend, errorMessage } from '../helpers/test-server.js';
import {
  insertJobsIfTargetsCurrent,
  type GuardedJob,
} from '../../src/repositories/job-batch-insert.repository.js';
import { loadJobTarget } from '../../src/repositories/job-targets.repository.js';
import { planJob } from '../../src/usecases/start-job.js';

// Running a job plans on a target remembered from an earlier run, and the insert checks it is
// still current. Each test runs a job first (so the target is remembered), changes what the
// target is made of, then runs again: the second job must follow the change.
describeOnEachBackend('running jobs on a remembered target', (server) => {
  async function runAndRead(domainPath: string, service = 'service-1', key = 'default') {
    const run = await server().post(runJobPath(domainPath, service, key), {});
    assert.equal(run.status, 202, JSON.stringify(run.body));
    const job = await server().get(`${domainPath}/jobs/${run.body.job_id}`);
    assert.equal(job.status, 200);
    return job.body;
  }

  it('follows a new domain revision of the assignment', async () => {
    const tenant = await createTenant(server());
    const first = await runAndRead(tenant.domainPath);
    await server().put(`/v2/models/${tenant.modelId}/versions/2.0.0`, {
      features: ROUTE_CONTRACT,
    });
    const replaced = await server().put(`${tenant.domainPath}/assignments/default`, {
      model_id: tenant.modelId,
      model_version: '2.0.0',
    });
    assert.equal(replaced.status, 200);
    const second = await runAndRead(tenant.domainPath);
    assert.equal(first.model_version, '1.0.0');
    assert.equal(second.model_version, '2.0.0');
    assert.notEqual(second.assignment_id, first.assignment_id);
  });

  it('takes a service revision made after the domain default was remembered', async () => {
    const tenant = await createTenant(server());
    const first = await runAndRead(tenant.domainPath);
    const own = await server().put(`${tenant.domainPath}/service/service-1/assignments/default`, {
      model_id: tenant.modelId,
      model_version: '1.0.0',
      config: { own: true },
    });
    assert.equal(own.status, 201, JSON.stringify(own.body));
    const second = await runAndRead(tenant.domainPath);
    assert.notEqual(second.assignment_id, first.assignment_id);
    assert.deepEqual(second.config, { own: true });
  });

  it('uses the features the service provides now', async () => {
    const tenant = await createTenant(server(), { services: { 'service-1': { route: 'r1' } } });
    const first = await runAndRead(tenant.domainPath);
    const changed = await server().put(`${tenant.domainPath}/services/service-1`, {
      provided_features: { route: 'r2', capacity: 7 },
    });
    assert.equal(changed.status, 200);
    const second = await runAndRead(tenant.domainPath);
    assert.deepEqual(first.features, { route: 'r1', capacity: 60 });
    assert.deepEqual(second.features, { route: 'r2', capacity: 7 });
  });

  it("uses the version's settings as they are now", async () => {
    const tenant = await createTenant(server());
    const first = await runAndRead(tenant.domainPath);
    const settings = await server().put(`/v2/models/${tenant.modelId}/versions/1.0.0`, {
      features: ROUTE_CONTRACT,
      job_types: ['inference', 'training'],
      max_attempts: 2,
      timeout_s: 60,
    });
    assert.equal(settings.status, 200, JSON.stringify(settings.body));
    const second = await runAndRead(tenant.domainPath);
    assert.equal(first.max_attempts, 5);
    assert.equal(second.max_attempts, 2);
    assert.equal(Date.parse(second.deadline) - Date.parse(second.created_at), 60_000);
  });

  it('refuses once the domain is inactive, the service departed or the assignment archived', async () => {
    const inactive = await createTenant(server());
    await runAndRead(inactive.domainPath);
    await server().put(inactive.domainPath, { status: 'inactive' });
    const refused = await server().post(runJobPath(inactive.domainPath), {});
    assert.equal(refused.status, 422);
    assert.match(errorMessage(refused), /inactive/);

    const departed = await createTenant(server());
    await runAndRead(departed.domainPath);
    await server().post(`${departed.domainPath}/services/service-1/depart`);
    const gone = await server().post(runJobPath(departed.domainPath), {});
    assert.equal(gone.status, 422);
    assert.match(errorMessage(gone), /departed/);

    const archived = await createTenant(server());
    await runAndRead(archived.domainPath);
    const archive = await server().put(`${archived.domainPath}/assignments/default`, {
      model_id: archived.modelId,
      model_version: '1.0.0',
      status: 'archived',
    });
    assert.equal(archive.status, 200, JSON.stringify(archive.body));
    const none = await server().post(runJobPath(archived.domainPath), {});
    assert.equal(none.status, 422);
    assert.match(errorMessage(none), /no active assignment/);
    const jobs = await server().get(`${archived.domainPath}/jobs`);
    assert.equal(jobs.body.items.length, 1, 'the refused run wrote no job');
  });

  it('an error answered from a remembered target is checked against current rows', async () => {
    // The remembered version does not support "scoring"; a new revision's version does.
    const tenant = await createTenant(server(), { jobTypes: ['inference'] });
    await runAndRead(tenant.domainPath);
    const unsupported = await server().post(runJobPath(tenant.domainPath), { job_type: 'scoring' });
    assert.equal(unsupported.status, 422);
    const v2 = uniqueId('v');
    await server().put(`/v2/models/${tenant.modelId}/versions/${v2}`, {
      features: ROUTE_CONTRACT,
      job_types: ['inference', 'scoring'],
    });
    await server().put(`${tenant.domainPath}/assignments/default`, {
      model_id: tenant.modelId,
      model_version: v2,
    });
    const supported = await server().post(runJobPath(tenant.domainPath), { job_type: 'scoring' });
    assert.equal(supported.status, 202, JSON.stringify(supported.body));
  });

  it('concurrent runs each get their own job, and one bad input fails alone', async () => {
    // On the embedded backend concurrent inserts share statements (group commit).
    const tenant = await createTenant(server(), {
      services: { 'service-1': { route: 'a' }, 'service-2': { route: 'b' } },
    });
    await runAndRead(tenant.domainPath, 'service-1');
    await runAndRead(tenant.domainPath, 'service-2');
    const runs = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        server().post(runJobPath(tenant.domainPath, i % 2 === 0 ? 'service-1' : 'service-2'), {
          input: i === 17 ? { text: 'nul \u0000 byte' } : { i },
        }),
      ),
    );
    const bad = runs[17]!;
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    const good = runs.filter((_, i) => i !== 17);
    assert.ok(good.every((run) => run.status === 202));
    const ids = good.map((run) => run.body.job_id as string);
    assert.equal(new Set(ids).size, ids.length);
    for (const [i, run] of runs.entries()) {
      if (i === 17) continue;
      const job = await server().get(`${tenant.domainPath}/jobs/${run.body.job_id}`);
      assert.deepEqual(job.body.input, { i }, `run ${i} got another request's job`);
      assert.equal(job.body.service_id, i % 2 === 0 ? 'service-1' : 'service-2');
      assert.deepEqual(job.body.features, { route: i % 2 === 0 ? 'a' : 'b', capacity: 60 });
    }
  });

  it('a shared insert keeps the rows whose target holds and drops those whose target changed', async () => {
    // Group commit checks each distinct target of a statement once; rows of several targets,
    // one at domain scope (no service, no service stamp), must each get their own answer.
    const tenant = await createTenant(server(), {
      services: { 'service-1': { route: 'a' }, 'service-2': { route: 'b' } },
    });
    const db = server().db;
    const guarded = async (serviceId: string | null): Promise<GuardedJob> => {
      const request = { clientId: tenant.clientId, domainId: tenant.domainId, serviceId };
      const target = await loadJobTarget(
        db,
        request.clientId,
        request.domainId,
        serviceId,
        'default',
      );
      const job = planJob(target, {
        ...request,
        key: 'default',
        jobType: 'inference',
        input: {},
        subscribe: false,
        trigger: null,
        lineage: [],
        models: '*',
      });
      const expect = { serviceStamp: target.service_stamp, versionStamp: target.version_stamp! };
      return { job, expect };
    };
    const [one, two, domain] = await Promise.all([
      guarded('service-1'),
      guarded('service-2'),
      guarded(null),
    ]);
    // service-2 changes after its target was read: its stamp no longer matches.
    const changed = await server().put(`${tenant.domainPath}/services/service-2`, {
      provided_features: { route: 'c' },
    });
    assert.equal(changed.status, 200);
    const ids = await insertJobsIfTargetsCurrent(db, [one, two, domain, one, two, domain]);
    assert.deepEqual(
      ids.map((id) => id !== undefined),
      [true, false, true, true, false, true],
    );
    const kept = ids.filter((id): id is string => id !== undefined);
    assert.equal(new Set(kept).size, 4);
    for (const [i, id] of ids.entries()) {
      if (id === undefined) continue;
      const job = await server().get(`${tenant.domainPath}/jobs/${id}`);
      assert.equal(job.status, 200);
      assert.equal(job.body.service_id, i % 3 === 0 ? 'service-1' : null);
    }
  });
});
