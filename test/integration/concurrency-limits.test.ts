import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import type { Envelope } from '../../src/domain/delivery.js';
import { assertStatus } from '../helpers/assertions.js';
import { AcceptingHandler } from '../helpers/cancel-peers.js';
import { RECEIVER_SECRET } from '../helpers/completing-receiver.js';
import { createTenant, runJob, sharingClient, uniqueId, type Tenant } from '../helpers/fixtures.js';
import { scrapeMetrics } from '../helpers/scrape-metrics.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { describeOnEachBackend, errorMessage, type TestServer } from '../helpers/test-server.js';

/**
 * `max_in_flight` on a model version and on a client: claims hand out no more than the room
 * left and push dispatch waits, nothing fails, and concurrent claimers never overshoot.
 */

const versionPath = (t: Tenant) => `/v2/models/${t.modelId}/versions/${t.version}`;

async function setVersionLimit(server: TestServer, t: Tenant, limit: number | null) {
  const put = await server.put(versionPath(t), { features: [], max_in_flight: limit });
  assertStatus(put, 200);
  assert.equal(put.body.max_in_flight, limit);
}

async function claim(
  server: TestServer,
  t: Tenant,
  maxJobs: number,
  workerId = 'w',
  token?: string,
) {
  const response = await server.post(
    `${versionPath(t)}/jobs/claim`,
    { worker_id: workerId, max_jobs: maxJobs, wait_ms: 0 },
    { token },
  );
  assertStatus(response, 200);
  return response.body.jobs as Envelope[];
}

async function complete(server: TestServer, t: Tenant, job: Envelope) {
  const done = await server.post(`${versionPath(t)}/jobs/${job.job_id}/complete`, {
    status: 'success',
    output: {},
    attempt: job.attempt,
  });
  assertStatus(done, 200);
}

async function inFlight(server: TestServer, where: string, value: string): Promise<number> {
  const { rows } = await server.db.query<{ n: number }>(
    `select count(*)::int as n from jobs where ${where} = $1 and status in ('dispatched', 'running')`,
    [value],
  );
  return rows[0]!.n;
}

/** Samples the version's jobs in flight every millisecond or so until `stop` is called. */
function sampleInFlight(server: TestServer, t: Tenant) {
  let sampling = true;
  let highest = 0;
  let samples = 0;
  const loop = (async () => {
    while (sampling) {
      highest = Math.max(highest, await inFlight(server, 'model_id', t.modelId));
      samples += 1;
      await sleep(1);
    }
  })();
  return async () => {
    sampling = false;
    await loop;
    return { highest, samples };
  };
}

async function heldBack(server: TestServer): Promise<number> {
  await sleep(300); // past the reuse of the previous scrape's read
  const metrics = await scrapeMetrics(server.url);
  return metrics.get('pie_jobs_held_back{limit="version"}') ?? NaN;
}

async function runJobs(server: TestServer, t: Tenant, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) ids.push(await runJob(server, t, { input: { n: i } }));
  return ids;
}

describeOnEachBackend('concurrency limits', (server) => {
  it('max_in_flight 8: four workers claiming 10 never hold more than 8, and all 100 finish', async () => {
    const t = await createTenant(server(), { features: [], services: { 'service-1': {} } });
    await setVersionLimit(server(), t, 8);
    await runJobs(server(), t, 100);

    const stop = sampleInFlight(server(), t);
    // Rounds in which the four workers claim at the same moment, the race a limit must survive:
    // each claim alone would see room for 8.
    let finished = 0;
    const worker = async (name: string) => {
      const jobs = await claim(server(), t, 10, name);
      await sleep(5 + Math.random() * 15);
      for (const job of jobs) {
        await complete(server(), t, job);
        finished += 1;
      }
    };
    for (let round = 0; finished < 100 && round < 200; round++) {
      await Promise.all(['w1', 'w2', 'w3', 'w4'].map(worker));
    }
    const { highest, samples } = await stop();

    assert.equal(finished, 100);
    assert.ok(samples > 20, `sampled ${samples} times`);
    assert.ok(highest <= 8, `at most 8 in flight, sampled ${highest}`);
    assert.ok(highest >= 2, `claims ran side by side (sampled ${highest} at once)`);
    const { rows } = await server().db.query<{ status: string; n: number }>(
      `select status, count(*)::int as n from jobs where model_id = $1 group by status`,
      [t.modelId],
    );
    assert.deepEqual(rows, [{ status: 'success', n: 100 }]);
  });

  it('workers of four clients claiming at once share one version limit of 8', async () => {
    // Each worker's token names one client, so each claim sees different jobs: without claims
    // taking turns under the limit, each would fill the room of 8 on its own.
    const t = await createTenant(server(), { features: [], services: { 'service-1': {} } });
    await setVersionLimit(server(), t, 8);
    const clients = [t.clientId];
    await runJobs(server(), t, 10);
    for (let i = 0; i < 3; i++) {
      const clientId = uniqueId('client');
      const domain = await sharingClient(server(), t, clientId);
      for (let n = 0; n < 10; n++) {
        assertStatus(
          await server().post(`${domain}/service/service-1/assignments/default/jobs`),
          202,
        );
      }
      clients.push(clientId);
    }
    const tokens = await Promise.all(
      clients.map((clientId) =>
        server().token(['jobs:complete'], { clients: [clientId], models: [t.modelId] }),
      ),
    );

    const stop = sampleInFlight(server(), t);
    let finished = 0;
    const worker = async (token: string, n: number) => {
      const jobs = await claim(server(), t, 10, `w${n}`, token);
      await sleep(10);
      for (const job of jobs) {
        await complete(server(), t, job);
        finished += 1;
      }
    };
    for (let round = 0; finished < 40 && round < 200; round++) {
      await Promise.all(tokens.map(worker));
    }
    const { highest } = await stop();
    assert.equal(finished, 40);
    assert.ok(highest <= 8, `at most 8 in flight, sampled ${highest}`);
  });

  it("a client's max_in_flight caps its jobs; another client's pass it by on the same version", async () => {
    const t = await createTenant(server(), { features: [], services: { 'service-1': {} } });
    const limited = await server().put(`/v2/clients/${t.clientId}`, { max_in_flight: 3 });
    assertStatus(limited, 200);
    assert.equal(limited.body.max_in_flight, 3);
    await runJobs(server(), t, 10);
    const other = uniqueId('client');
    const otherDomain = await sharingClient(server(), t, other);
    const theirs = [];
    for (let i = 0; i < 4; i++) {
      const run = await server().post(`${otherDomain}/service/service-1/assignments/default/jobs`);
      assertStatus(run, 202);
      theirs.push(run.body.job_id as string);
    }

    const first = await claim(server(), t, 10);
    const mine = first.filter((job) => job.client_id === t.clientId);
    assert.equal(mine.length, 3, 'the limited client gets its room of 3');
    assert.deepEqual(
      first
        .filter((job) => job.client_id === other)
        .map((job) => job.job_id)
        .sort(),
      theirs.sort(),
      "the other client's jobs are handed out past the limited one's",
    );
    assert.deepEqual(await claim(server(), t, 10), [], 'nothing more until a job finishes');
    await complete(server(), t, mine[0]!);
    const next = await claim(server(), t, 10);
    assert.equal(next.length, 1, 'one finished makes room for one');
    assert.equal(await inFlight(server(), 'client_id', t.clientId), 3);

    // Removing the limit releases the rest at once.
    assertStatus(await server().put(`/v2/clients/${t.clientId}`, { max_in_flight: null }), 200);
    assert.equal((await claim(server(), t, 10)).length, 6);
  });

  it('max_in_flight 0 holds every job queued until the limit is raised', async () => {
    const t = await createTenant(server(), { features: [], services: { 'service-1': {} } });
    await setVersionLimit(server(), t, 0);
    await runJobs(server(), t, 3);
    assert.deepEqual(await claim(server(), t, 5), []);
    await setVersionLimit(server(), t, 2);
    assert.equal((await claim(server(), t, 5)).length, 2);
    // A PUT without the field keeps the limit.
    const again = await server().put(versionPath(t), { features: [] });
    assertStatus(again, 200);
    assert.equal(again.body.max_in_flight, 2);
  });

  it('/metrics shows queue depth by priority and the jobs held back by limits', async () => {
    const t = await createTenant(server(), { features: [], services: { 'service-1': {} } });
    const heldBefore = await heldBack(server());
    await setVersionLimit(server(), t, 0);
    // A priority no other test uses, so its series counts this test's jobs alone.
    for (let i = 0; i < 3; i++) await runJob(server(), t, { priority: 42 });
    await sleep(300);
    const metrics = await scrapeMetrics(server().url);
    assert.equal(metrics.get('pie_jobs_queued{priority="42",queue="pull"}'), 3);
    assert.equal((await heldBack(server())) - heldBefore, 3);

    await setVersionLimit(server(), t, null);
    assert.equal((await claim(server(), t, 3)).length, 3);
    await sleep(300);
    const after = await scrapeMetrics(server().url);
    assert.equal(after.get('pie_jobs_queued{priority="42",queue="pull"}'), undefined);
    assert.equal(await heldBack(server()), heldBefore);
  });

  it('refuses a limit that is not a whole number from 0 with a 400 naming it', async () => {
    const t = await createTenant(server(), { features: [], services: { 'service-1': {} } });
    for (const bad of [-1, 1.5, '8', true]) {
      const put = await server().put(versionPath(t), { features: [], max_in_flight: bad });
      assertStatus(put, 400);
      assert.match(errorMessage(put), /max_in_flight/);
      const client = await server().put(`/v2/clients/${t.clientId}`, { max_in_flight: bad });
      assertStatus(client, 400);
      assert.match(errorMessage(client), /max_in_flight/);
    }
    const version = await server().get(versionPath(t));
    assert.equal(version.body.max_in_flight, null, 'nothing stored by the refused requests');
  });

  it("only an admin sets a client's max_in_flight; tenants:write may still rename it", async () => {
    const t = await createTenant(server(), { features: [], services: { 'service-1': {} } });
    const token = await server().token(['tenants:write', 'read'], { clients: [t.clientId] });
    const raise = await server().put(
      `/v2/clients/${t.clientId}`,
      { max_in_flight: 1000 },
      { token },
    );
    assertStatus(raise, 403);
    assert.match(errorMessage(raise), /admin/);
    const rename = await server().put(`/v2/clients/${t.clientId}`, { name: 'Renamed' }, { token });
    assertStatus(rename, 200);
    assert.equal(rename.body.max_in_flight, null);
  });
});

describeOnEachBackend(
  'concurrency limits, push dispatch',
  (server) => {
    const receiver = new AcceptingHandler();
    before(() => receiver.start());
    after(() => receiver.close());

    it('push dispatch waits at the limit and delivers as completions make room', async () => {
      const t = await createTenant(server(), {
        features: [],
        services: { 'service-1': {} },
        version: {
          handler: { type: 'http', url: receiver.url, secret: RECEIVER_SECRET },
          max_in_flight: 2,
        },
      });
      const ids = await runJobs(server(), t, 6);
      const mine = () => receiver.deliveries.filter((job) => ids.includes(job.job_id));
      await waitFor('two deliveries', () => mine().length === 2, 10_000);
      // More time than several polls: nothing else arrives while two are in flight.
      await sleep(600);
      assert.equal(mine().length, 2);
      assert.equal(await inFlight(server(), 'model_id', t.modelId), 2);

      for (let done = 0; done < 6; done++) {
        const job = mine()[done]!;
        const completed = await fetch(job.callback.url, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${job.callback.token}`,
            'content-type': 'application/json',
          },
          body: JSON.stringify({ status: 'success', output: {}, attempt: job.attempt }),
        });
        assert.equal(completed.status, 200);
        const expected = Math.min(6, done + 3);
        await waitFor(`delivery ${expected}`, () => mine().length === expected, 10_000);
        assert.ok((await inFlight(server(), 'model_id', t.modelId)) <= 2);
      }
    });
  },
  undefined,
  { concurrency: 8 },
);
