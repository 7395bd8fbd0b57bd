import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, it } from 'node:test';
import { assertStatus } from '../helpers/assertions.js';
import { RECEIVER_SECRET } from '../helpers/completing-receiver.js';
import { closeServer, listenOnLoopback } from '../helpers/loopback.js';
import { waitFor } from '../helpers/wait.js';
import {
  createTenant,
  runJobPath,
  sharingClient,
  uniqueId,
  type Tenant,
} from '../helpers/fixtures.js';
import { describeOnEachBackend, type TestServer } from '../helpers/test-server.js';

/**
 * Who a claim hands jobs to when the queue is contended: higher priority first, then
 * round-robin across (client, domain) lanes, so a region that queued 10,000 jobs does not hold
 * another's first job back by more than one claim batch.
 */

/** `count` active services in the tenant's domain, written directly (the API would take minutes). */
async function addServices(server: TestServer, tenant: Tenant, count: number): Promise<void> {
  await server.db.query(
    `insert into services (client_id, domain_id, service_id, provided_features, resolved_features)
     select $1, $2, 'svc-' || lpad(g::text, 6, '0'), '{}', '{}' from generate_series(1, $3::int) g`,
    [tenant.clientId, tenant.domainId, count],
  );
}

async function claim(server: TestServer, tenant: Tenant, maxJobs: number): Promise<string[]> {
  const response = await server.post(
    `/v2/models/${tenant.modelId}/versions/${tenant.version}/jobs/claim`,
    { worker_id: 'scheduling-test', max_jobs: maxJobs, wait_ms: 0 },
  );
  assertStatus(response, 200);
  return (response.body.jobs as { job_id: string }[]).map((job) => job.job_id);
}

describeOnEachBackend('scheduling under contention', (server) => {
  it("a domain with 10,000 queued jobs delays another client's 5 by at most one claim", async () => {
    const a = await createTenant(server(), { features: [], services: {} });
    await addServices(server(), a, 10_000);
    const init = await server().post(`${a.domainPath}/services/init`, {});
    assertStatus(init, 202);
    assert.equal(init.body.dispatched_services.length, 10_000);

    const b = await sharingClient(server(), a, uniqueId('client'));
    const mine: string[] = [];
    for (let i = 0; i < 5; i++) {
      const run = await server().post(runJobPath(b), { input: { n: i } });
      assertStatus(run, 202);
      mine.push(run.body.job_id as string);
    }

    const claimed = [...(await claim(server(), a, 50)), ...(await claim(server(), a, 50))];
    assert.equal(claimed.length, 100);
    const got = mine.filter((id) => claimed.includes(id));
    assert.deepEqual(got, mine, `B's jobs in the first two claims of 50: ${got.length} of 5`);
  });

  it('a job of higher priority is claimed before 1,000 queued before it', async () => {
    const a = await createTenant(server(), { features: [], services: {} });
    await addServices(server(), a, 1_000);
    assertStatus(await server().post(`${a.domainPath}/services/init`, {}), 202);
    const urgent = await server().post(runJobPath(a.domainPath, 'svc-000007'), { priority: 10 });
    assertStatus(urgent, 202);

    const job = await server().get(`${a.domainPath}/jobs/${urgent.body.job_id}`);
    assert.equal(job.body.priority, 10);
    assert.deepEqual(await claim(server(), a, 1), [urgent.body.job_id]);
  });

  it("an assignment's priority is the default of its jobs; a run-job body overrides it", async () => {
    const a = await createTenant(server(), { features: [], services: { 'service-1': {} } });
    const put = await server().put(`${a.domainPath}/assignments/default`, {
      model_id: a.modelId,
      model_version: a.version,
      priority: -5,
    });
    assertStatus(put, 200);
    assert.equal(put.body.priority, -5, 'a new priority is a new revision');
    const low = await server().post(runJobPath(a.domainPath), {});
    const high = await server().post(runJobPath(a.domainPath), { priority: 3 });
    for (const [run, priority] of [
      [low, -5],
      [high, 3],
    ] as const) {
      assertStatus(run, 202);
      const job = await server().get(`${a.domainPath}/jobs/${run.body.job_id}`);
      assert.equal(job.body.priority, priority);
    }
    assert.deepEqual(await claim(server(), a, 2), [high.body.job_id, low.body.job_id]);
  });

  it("a subscription's action priority goes on the jobs it starts; without one, the assignment's", async () => {
    const a = await createTenant(server(), { features: [], services: { 'service-1': {} } });
    const actions = [
      { assignment_key: 'default', service_id: 'service-1', job_type: 'training', priority: 7 },
      { assignment_key: 'default', service_id: 'service-1', job_type: 'training' },
    ];
    for (const action of actions) {
      const created = await server().post(`${a.domainPath}/subscriptions`, {
        source: { model_id: a.modelId },
        action,
      });
      assertStatus(created, 201);
      assert.equal(created.body.action.priority, action.priority ?? null);
    }
    const inference = await server().post(runJobPath(a.domainPath), {});
    assertStatus(inference, 202);
    const done = await server().post(
      `/v2/models/${a.modelId}/versions/${a.version}/jobs/${inference.body.job_id}/complete`,
      { status: 'success', output: {} },
    );
    assertStatus(done, 200);
    const priorities = [];
    for (const event of done.body.triggered_events as { job_id: string }[]) {
      const job = await server().get(`${a.domainPath}/jobs/${event.job_id}`);
      priorities.push(job.body.priority as number);
    }
    assert.deepEqual(priorities.sort(), [0, 7]);
  });

  it('refuses a priority outside -100..100 with a 400 naming it', async () => {
    const a = await createTenant(server(), { features: [], services: { 'service-1': {} } });
    for (const priority of [101, -101, 1.5, '5']) {
      const run = await server().post(runJobPath(a.domainPath), { priority });
      assertStatus(run, 400);
      assert.match(run.body.message as string, /priority/);
    }
  });
});

/** An http handler that records deliveries in arrival order and, while holding, answers none. */
class HoldingReceiver {
  readonly arrived: string[] = [];
  holding = true;
  url = '';
  private readonly held: http.ServerResponse[] = [];
  private readonly server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      this.arrived.push((JSON.parse(body) as { job_id: string }).job_id);
      if (this.holding) this.held.push(response);
      else response.writeHead(202).end('{}');
    });
  });

  async start(): Promise<void> {
    this.url = `http://127.0.0.1:${await listenOnLoopback(this.server)}/hook`;
  }

  release(): void {
    this.holding = false;
    for (const response of this.held.splice(0)) response.writeHead(202).end('{}');
  }

  close(): Promise<void> {
    this.release();
    return closeServer(this.server);
  }
}

const PUSH_SLOTS = 10;

describeOnEachBackend(
  'scheduling under contention, push dispatch',
  (server) => {
    const receiver = new HoldingReceiver();
    before(() => receiver.start());
    after(() => receiver.close());

    it("an http handler gets another client's 5 jobs within two claims after 1,000", async () => {
      const a = await createTenant(server(), {
        features: [],
        services: {},
        version: { handler: { type: 'http', url: receiver.url, secret: RECEIVER_SECRET } },
      });
      await addServices(server(), a, 1_000);
      assertStatus(await server().post(`${a.domainPath}/services/init`, {}), 202);
      // The dispatcher fills its slots with A's jobs and waits on the held deliveries.
      await waitFor('the slots to fill', () => receiver.arrived.length === PUSH_SLOTS, 15_000);

      const b = await sharingClient(server(), a, uniqueId('client'));
      const mine: string[] = [];
      for (let i = 0; i < 5; i++) {
        const run = await server().post(runJobPath(b), {});
        assertStatus(run, 202);
        mine.push(run.body.job_id as string);
      }
      receiver.release();
      const window = PUSH_SLOTS + 2 * PUSH_SLOTS;
      await waitFor('deliveries past two claims', () => receiver.arrived.length >= window, 15_000);
      const early = receiver.arrived.slice(0, window);
      const got = mine.filter((id) => early.includes(id));
      assert.deepEqual(got, mine, `B's jobs among the first ${window} deliveries: ${got.length}`);
    });
  },
  undefined,
  { concurrency: PUSH_SLOTS },
);
