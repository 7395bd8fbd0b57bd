import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { Queryable } from '../../src/db/database.js';
import { expireLeases } from '../../src/lifecycle/expiry.js';
import { readJobEvents } from '../../src/repositories/job-events.repository.js';
import { RetentionService } from '../../src/services/retention.service.js';
import { expectBody } from '../helpers/assertions.js';
import { completePath, createTenant, runJob, type Tenant } from '../helpers/fixtures.js';
import { describeOnEachBackend, errorMessage, type TestServer } from '../helpers/test-server.js';

/**
 * `GET .../jobs/{job_id}/events`: a job's status changes from the job event log (migration
 * 000014), oldest first with their attempts, and whether they reach back to its creation.
 */

interface Change {
  position: number;
  status: string;
  previous_status: string | null;
  attempt: number;
  at: string;
}

interface Timeline {
  items: Change[];
  complete: boolean;
}

const timelinePath = (tenant: Tenant, jobId: string) => `${tenant.domainPath}/jobs/${jobId}/events`;

/** Numbers every committed event now, rather than a moment later by the server. */
async function sequenced(server: TestServer): Promise<void> {
  await server.db.query('select pie_sequence_job_events(100000)');
}

async function timeline(server: TestServer, tenant: Tenant, jobId: string): Promise<Timeline> {
  await sequenced(server);
  return expectBody<Timeline>(await server.get(timelinePath(tenant, jobId)), 200);
}

const claimPath = (tenant: Tenant) =>
  `/v2/models/${tenant.modelId}/versions/${tenant.version}/jobs/claim`;

/** A pull worker claims the tenant's next job; answers its id and attempt. */
async function claim(server: TestServer, tenant: Tenant) {
  const claimed = expectBody<{ jobs: { job_id: string; attempt: number }[] }>(
    await server.post(claimPath(tenant), { worker_id: 'timeline-test', wait_ms: 0, lease_s: 60 }),
    200,
  );
  assert.equal(claimed.jobs.length, 1, 'one job claimed');
  return claimed.jobs[0]!;
}

describeOnEachBackend('job timeline', (server) => {
  it('lists every change in order with its attempt: a job dispatched twice shows both', async () => {
    const tenant = await createTenant(server());
    const jobId = await runJob(server(), tenant);
    assert.equal((await claim(server(), tenant)).attempt, 1);
    expectBody(
      await server().post(
        `/v2/models/${tenant.modelId}/versions/${tenant.version}/jobs/${jobId}/heartbeat`,
        { attempt: 1, status: 'running' },
      ),
      200,
    );
    // The worker stops renewing: its lease expires and the reaper puts the job back.
    await server().db.query(
      `update jobs set lease_expires_at = now() - interval '1 second' where job_id = $1`,
      [jobId],
    );
    assert.equal(
      await server().ctx.events.afterCommit((emit) => expireLeases(server().db, emit, 100)),
      1,
    );
    await server().db.query('update jobs set run_at = now() where job_id = $1', [jobId]);
    assert.equal((await claim(server(), tenant)).attempt, 2);
    expectBody(
      await server().post(completePath(tenant, jobId), { status: 'success', attempt: 2 }),
      200,
    );

    const answer = await timeline(server(), tenant, jobId);
    assert.deepEqual(
      answer.items.map((change) => [change.previous_status, change.status, change.attempt]),
      [
        [null, 'queued', 0],
        ['queued', 'dispatched', 1],
        ['dispatched', 'running', 1],
        ['running', 'queued', 1],
        ['queued', 'dispatched', 2],
        ['dispatched', 'success', 2],
      ],
    );
    assert.equal(answer.complete, true);
    const positions = answer.items.map((change) => change.position);
    assert.deepEqual(
      positions,
      [...positions].sort((a, b) => a - b),
      'positions increase',
    );
    const times = answer.items.map((change) => Date.parse(change.at));
    assert.deepEqual(
      times,
      [...times].sort((a, b) => a - b),
      'times never go back',
    );
    const job = expectBody<{ updated_at: string; created_at: string }>(
      await server().get(`${tenant.domainPath}/jobs/${jobId}`),
      200,
    );
    assert.equal(answer.items.at(-1)!.at, job.updated_at, 'the last change is the row as it is');
    assert.equal(answer.items[0]!.at, job.created_at, 'the first is its creation');
  });

  it("answers only the job's own changes, not its neighbours' or its retry's", async () => {
    const tenant = await createTenant(server());
    const jobId = await runJob(server(), tenant);
    await runJob(server(), tenant);
    expectBody(await server().post(`${tenant.domainPath}/jobs/${jobId}/cancel`), 200);
    const retry = expectBody<{ job_id: string }>(
      await server().post(`${tenant.domainPath}/jobs/${jobId}/retry`),
      202,
    ).job_id;
    const answer = await timeline(server(), tenant, jobId);
    assert.deepEqual(
      answer.items.map((change) => change.status),
      ['queued', 'cancelled'],
    );
    assert.equal(answer.complete, true);
    const retried = await timeline(server(), tenant, retry);
    assert.deepEqual(
      retried.items.map((change) => [change.previous_status, change.status]),
      [[null, 'queued']],
    );
  });

  it('is a 404 for an unknown job, domain or client, as the job read is', async () => {
    const tenant = await createTenant(server());
    const jobId = await runJob(server(), tenant);
    const cases: [string, RegExp][] = [
      [timelinePath(tenant, '999999999999'), /job "999999999999" not found in domain/],
      [
        `/v2/clients/${tenant.clientId}/domains/nowhere/jobs/${jobId}/events`,
        /domain "nowhere" not found/,
      ],
      [`/v2/clients/nobody/domains/${tenant.domainId}/jobs/${jobId}/events`, /client "nobody"/],
    ];
    for (const [path, message] of cases) {
      const answer = await server().get(path);
      assert.equal(answer.status, 404, path);
      assert.match(errorMessage(answer), message);
      const read = await server().get(path.replace(/\/events$/, ''));
      assert.equal(read.status, 404, `the job read agrees: ${path}`);
      assert.equal(errorMessage(read), errorMessage(answer));
    }
    assert.equal((await server().get(`${timelinePath(tenant, 'abc')}`)).status, 400);
  });

  it("never shows a job's changes to another client", async () => {
    const tenant = await createTenant(server());
    const other = await createTenant(server());
    const jobId = await runJob(server(), tenant);
    await sequenced(server());

    // Another client's token on this client's path: refused before anything is read.
    const outsider = await server().token(['read'], { clients: [other.clientId] });
    const refused = await server().get(timelinePath(tenant, jobId), { token: outsider });
    assert.equal(refused.status, 403);
    assert.match(errorMessage(refused), /may not act on client/);
    assert.doesNotMatch(JSON.stringify(refused.body), new RegExp(jobId));

    // This job's id under the other client's own path, and under another domain of its own
    // client: not found there, whoever asks.
    for (const token of [outsider, server().adminToken]) {
      const answer = await server().get(timelinePath(other, jobId), { token });
      assert.equal(answer.status, 404);
      assert.equal(answer.body.items, undefined);
    }
    expectBody(await server().put(`/v2/clients/${tenant.clientId}/domains/elsewhere`, {}), 201);
    const elsewhere = await server().get(
      `/v2/clients/${tenant.clientId}/domains/elsewhere/jobs/${jobId}/events`,
    );
    assert.equal(elsewhere.status, 404);
    assert.match(errorMessage(elsewhere), /not found in domain "elsewhere"/);

    // The owner's own read token sees it; a token without `read` does not.
    const own = await server().token(['read'], { clients: [tenant.clientId] });
    const mine = expectBody<Timeline>(
      await server().get(timelinePath(tenant, jobId), { token: own }),
      200,
    );
    assert.equal(mine.items.length, 1);
    const worker = await server().token(['jobs:complete']);
    assert.equal((await server().get(timelinePath(tenant, jobId), { token: worker })).status, 403);
  });

  it('answers at most the latest 1,000 changes, then not complete', async () => {
    const tenant = await createTenant(server());
    const jobId = await runJob(server(), tenant);
    // A job released again and again: 1,100 changes after its creation.
    await server().db.query(
      `insert into job_events (client_id, domain_id, job_id, status, previous_status, job_type,
         service_id, model_id, model_version, attempt, updated_at)
       select client_id, domain_id, job_id,
         case when i % 2 = 1 then 'dispatched' else 'queued' end,
         case when i % 2 = 1 then 'queued' else 'dispatched' end,
         job_type, service_id, model_id, model_version, (i + 1) % 2,
         now() + make_interval(secs => i)
       from jobs, generate_series(1, 1100) as i
       where job_id = $1`,
      [jobId],
    );
    const answer = await timeline(server(), tenant, jobId);
    assert.equal(answer.items.length, 1000);
    assert.equal(answer.complete, false);
    assert.equal(answer.items.at(-1)!.status, 'queued', 'the latest change is last');
    const { rows } = await server().db.query<{ last: string }>(
      'select max(position)::text as last from job_events where job_id = $1',
      [jobId],
    );
    assert.equal(answer.items.at(-1)!.position, Number(rows[0]!.last));
  });

  it("reads the job's rows through job_events_by_job", async () => {
    // Other jobs' events, so that a scan of the log would be the planner's honest choice.
    await server().db.query(
      `insert into job_events (client_id, domain_id, job_id, status, previous_status, job_type,
         service_id, model_id, model_version, attempt, updated_at)
       select 'plan-client', 'plan-domain', lpad((i % 2000)::text, 12, '0'), 'queued', null,
         'inference', null, 'm', '1', 0, now()
       from generate_series(1, 8000) as i`,
    );
    await sequenced(server());
    await server().db.exec('analyze job_events');
    let statement: { text: string; values: readonly unknown[] } | undefined;
    const capture: Queryable = {
      query: (text, values = []) => {
        statement = { text, values };
        return Promise.resolve({ rows: [], rowCount: 0 });
      },
      exec: () => Promise.reject(new Error('not used')),
    };
    await readJobEvents(capture, 'plan-client', 'plan-domain', '000000000007', 1000);
    const { rows } = await server().db.query(`explain ${statement!.text}`, [...statement!.values]);
    const plan = rows.map((row) => String(row['QUERY PLAN'])).join('\n');
    assert.match(plan, /job_events_by_job/, plan);
    assert.doesNotMatch(plan, /Seq Scan/, plan);
  });

  // Last: retention ages and deletes the whole log of this file's database.
  it('is not complete once retention deleted the start of the job', async () => {
    const tenant = await createTenant(server());
    const jobId = await runJob(server(), tenant);
    await sequenced(server());
    // Everything so far is two hours old; the cancel that follows is recent.
    await server().db.query("update job_events set created_at = now() - interval '2 hours'");
    expectBody(await server().post(`${tenant.domainPath}/jobs/${jobId}/cancel`), 200);
    const before = await timeline(server(), tenant, jobId);
    assert.equal(before.complete, true);
    assert.equal(before.items.length, 2);

    const retention = new RetentionService(
      server().db,
      { intervalMs: 60_000, jobsMaxAgeS: undefined, eventsMaxAgeS: 3600, batch: 1000 },
      { debug: () => undefined, error: () => undefined },
      server().ctx.metrics,
    );
    const turn = await retention.runOnce();
    assert.ok(turn.deleted.events > 0);

    const after = await timeline(server(), tenant, jobId);
    assert.equal(after.complete, false);
    assert.deepEqual(
      after.items.map((change) => [change.previous_status, change.status]),
      [['queued', 'cancelled']],
    );
    assert.deepEqual(after.items[0], before.items[1]);
    // The job itself is still there, and so is its route.
    expectBody(await server().get(`${tenant.domainPath}/jobs/${jobId}`), 200);
  });
});
