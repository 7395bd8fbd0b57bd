import { expectBody } from './assertions.js';
import { createTenant, type Tenant } from './fixtures.js';
import type { TestServer } from './test-server.js';

/** A tenant with one of everything a caller can touch, all made through the API. */
export interface SeededTenant extends Tenant {
  /** Jobs still queued (cancellable, completable). */
  queuedJobs: string[];
  /** A job completed with success (its subscription fired). */
  completedJob: string;
  /** A cancelled job. */
  cancelledJob: string;
  subscriptionId: string;
  /** A batch of one queued job on service-2 (`jobs/batch`). */
  batchId: string;
  /** Assignment keys: `default` (domain), `domain-key` (domain), `svc-key` (service-1). */
  keys: string[];
}

/**
 * Seeds a client with services `service-1` and `service-2`, the default assignment, a second
 * domain-scope key, a service-scope key, a subscription, queued jobs, a completed job, a
 * cancelled one and a batch. The version uses the pull-worker handler, so no dispatcher is needed and jobs
 * stay where the seed leaves them.
 */
export async function seedTenant(server: TestServer, queued = 4): Promise<SeededTenant> {
  const tenant = await createTenant(server, {
    services: { 'service-1': { route: 'r1' }, 'service-2': { route: 'r2' } },
  });
  const { domainPath, modelId, version } = tenant;
  const assignment = { model_id: modelId, model_version: version };
  expectBody(await server.put(`${domainPath}/assignments/domain-key`, assignment), 201);
  expectBody(
    await server.put(`${domainPath}/service/service-1/assignments/svc-key`, assignment),
    201,
  );

  const run = async (path: string, body: unknown = {}) =>
    expectBody<{ job_id: string; subscription_id?: string }>(await server.post(path, body), 202);
  const serviceJobs = `${domainPath}/service/service-1/assignments/default/jobs`;
  const subscribed = await run(serviceJobs, { input: { seed: true }, subscribe: true });
  const queuedJobs: string[] = [];
  for (let i = 0; i < queued; i += 1) {
    const path = i % 2 === 0 ? serviceJobs : `${domainPath}/assignments/domain-key/jobs`;
    queuedJobs.push((await run(path, { input: { i } })).job_id);
  }
  const cancelledJob = (await run(serviceJobs)).job_id;
  const batch = expectBody<{ batch_id: string }>(
    await server.post(`${domainPath}/jobs/batch`, {
      assignment_key: 'default',
      jobs: [{ service_id: 'service-2' }],
    }),
    202,
  );
  expectBody(await server.post(`${domainPath}/jobs/${cancelledJob}/cancel`), 200);
  expectBody(
    await server.post(
      `/v2/models/${modelId}/versions/${version}/jobs/${subscribed.job_id}/complete`,
      {
        status: 'success',
        output: { seeded: true },
      },
    ),
    200,
  );
  if (subscribed.subscription_id === undefined)
    throw new Error('subscribe: true made no subscription');
  return {
    ...tenant,
    queuedJobs,
    completedJob: subscribed.job_id,
    cancelledJob,
    subscriptionId: subscribed.subscription_id,
    batchId: batch.batch_id,
    keys: ['default', 'domain-key', 'svc-key'],
  };
}
