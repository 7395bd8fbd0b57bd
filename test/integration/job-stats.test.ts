import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Queryable } from '../../src/db/database.js';
import { migrate, readMigrations } from '../../src/db/migrate.js';
import { JOB_STATUSES } from '../../src/domain/job-status.js';
import { Metrics } from '../../src/observability/metrics.js';
import { RetentionService } from '../../src/services/retention.service.js';
import { assertStatus, expectBody } from '../helpers/assertions.js';
import { testBackends } from '../helpers/backends.js';
import {
  completePath,
  createTenant,
  runJob,
  runJobPath,
  type Tenant,
} from '../helpers/fixtures.js';
import { insertJobs, seedJobTarget } from '../helpers/job-rows.js';
import { describeOnEachBackend, errorMessage, type TestServer } from '../helpers/test-server.js';

/**
 * Job statistics (`GET .../stats`, migration 000017): the counters the event-log sequencer
 * keeps must agree with counting the jobs, after every kind of change, after retention, across
 * the migration that introduces them, and whichever of the sequencer and retention goes first.
 */

type Counts = Record<string, number>;

interface Stats {
  as_of: string;
  jobs_by_status: Counts;
  throughput: { bucket_s: number; since: string; buckets: (Counts & { at: string })[] };
}

const quietLog = { debug: () => undefined, error: () => undefined };

/** Numbers (and so counts) every committed change now, as the server would a moment later. */
async function sequence(q: Queryable): Promise<void> {
  await q.query('select pie_sequence_job_events(100000)');
}

/** Every status, 0 when none: what `jobs_by_status` must equal. */
function allStatuses(rows: { status: string; n: number }[]): Counts {
  const counts: Counts = Object.fromEntries(JOB_STATUSES.map((status) => [status, 0]));
  for (const { status, n } of rows) counts[status] = (counts[status] ?? 0) + n;
  return counts;
}

/** The jobs counted by status, the expensive way the counters replace. */
async function countedJobs(q: Queryable, clientId: string, domainId?: string): Promise<Counts> {
  const { rows } = await q.query<{ status: string; n: number }>(
    `select status, count(*)::int as n from jobs
     where client_id = $1 and ($2::text is null or domain_id = $2) group by status`,
    [clientId, domainId ?? null],
  );
  return allStatuses(rows);
}

/** What job_counts holds for every (client, domain) against what the jobs say. */
async function countsAgainstJobs(q: Queryable) {
  const { rows } = await q.query<{ key: string; counter: number; jobs: number }>(
    `select k.client_id || '/' || k.domain_id || '/' || k.status as key,
       coalesce(c.count, 0)::int as counter, coalesce(j.n, 0)::int as jobs
     from (select client_id, domain_id, status from job_counts
           union select client_id, domain_id, status from jobs) as k
     left join job_counts c using (client_id, domain_id, status)
     left join (select client_id, domain_id, status, count(*) as n from jobs
                group by client_id, domain_id, status) as j using (client_id, domain_id, status)
     order by 1`,
  );
  return rows;
}

async function assertCountsAgree(q: Queryable, message: string) {
  const rows = await countsAgainstJobs(q);
  assert.deepEqual(
    rows.filter((row) => row.counter !== row.jobs),
    [],
    `${message}: counters that disagree with the jobs`,
  );
}

async function stats(server: TestServer, path: string, token?: string): Promise<Stats> {
  return expectBody<Stats>(await server.get(`${path}/stats`, token ? { token } : {}), 200);
}

/** A second domain of the tenant's client, `north`, running the same version. */
async function secondDomain(server: TestServer, tenant: Tenant): Promise<string> {
  const path = `/v2/clients/${tenant.clientId}/domains/north`;
  assertStatus(await server.put(path, {}), 201);
  assertStatus(
    await server.put(`${path}/services/service-1`, { provided_features: { route: 'n1' } }),
    201,
  );
  assertStatus(
    await server.put(`${path}/assignments/default`, {
      model_id: tenant.modelId,
      model_version: tenant.version,
    }),
    201,
  );
  return path;
}

describeOnEachBackend('job statistics', (server) => {
  it('equal the jobs counted by status after every kind of change, and retention', async () => {
    const tenant = await createTenant(server(), {
      services: { 'service-1': { route: 'r1' }, 'service-2': { route: 'r2' } },
    });
    const north = await secondDomain(server(), tenant);
    const version = `/v2/models/${tenant.modelId}/versions/${tenant.version}`;

    // Run jobs; a worker claims four, starts one, completes two and fails one.
    const ran = [];
    for (let i = 0; i < 8; i += 1) ran.push(await runJob(server(), tenant, { input: { i } }));
    const claimed = expectBody<{ jobs: { job_id: string; attempt: number }[] }>(
      await server().post(`${version}/jobs/claim`, {
        worker_id: 'stats-worker',
        max_jobs: 4,
        wait_ms: 0,
      }),
      200,
    ).jobs;
    assert.equal(claimed.length, 4);
    const [started, succeeded, alsoSucceeded, failed] = claimed;
    expectBody(
      await server().post(`${version}/jobs/${started!.job_id}/heartbeat`, {
        attempt: started!.attempt,
        status: 'running',
      }),
      200,
    );
    for (const job of [succeeded!, alsoSucceeded!]) {
      expectBody(
        await server().post(completePath(tenant, job.job_id), { status: 'success', output: {} }),
        200,
      );
    }
    expectBody(
      await server().post(completePath(tenant, failed!.job_id), {
        status: 'failure',
        error: { code: 'model_error' },
      }),
      200,
    );
    // A queued job completed without a claim, and one cancelled.
    const queued = ran.filter((id) => !claimed.some((job) => job.job_id === id));
    expectBody(
      await server().post(completePath(tenant, queued[0]!), { status: 'success', output: {} }),
      200,
    );
    expectBody(await server().post(`${tenant.domainPath}/jobs/${queued[1]!}/cancel`), 200);
    // A retry of the failure and of the cancelled job, services init, and a bulk cancel.
    expectBody(await server().post(`${tenant.domainPath}/jobs/${failed!.job_id}/retry`), 202);
    expectBody(
      await server().post(`${tenant.domainPath}/jobs/retry`, { status: 'cancelled' }),
      202,
    );
    expectBody(await server().post(`${tenant.domainPath}/services/init`), 202);
    const bulk = expectBody<{ count: number }>(
      await server().post(`${tenant.domainPath}/jobs/cancel`, {
        status: 'queued',
        service_id: 'service-2',
      }),
      200,
    );
    assert.ok(bulk.count >= 1, 'services init queued a job for service-2');
    // The other domain: three jobs, one completed.
    const northJobs = [];
    for (let i = 0; i < 3; i += 1) {
      northJobs.push(
        expectBody<{ job_id: string }>(await server().post(runJobPath(north), {}), 202).job_id,
      );
    }
    expectBody(
      await server().post(completePath(tenant, northJobs[0]!), { status: 'success', output: {} }),
      200,
    );

    await sequence(server().db);
    const domain = await stats(server(), tenant.domainPath);
    const expected = await countedJobs(server().db, tenant.clientId, tenant.domainId);
    assert.deepEqual(domain.jobs_by_status, expected);
    for (const status of ['queued', 'running', 'success', 'failure', 'cancelled']) {
      assert.ok((expected[status] ?? 0) > 0, `the mix has ${status} jobs`);
    }
    const northStats = await stats(server(), north);
    const northCounts: Counts = { ...northStats.jobs_by_status };
    assert.deepEqual(
      northStats.jobs_by_status,
      await countedJobs(server().db, tenant.clientId, 'north'),
    );
    assert.deepEqual(northStats.jobs_by_status, { ...allStatuses([]), queued: 2, success: 1 });
    const client = await stats(server(), `/v2/clients/${tenant.clientId}`);
    assert.deepEqual(client.jobs_by_status, await countedJobs(server().db, tenant.clientId));
    for (const status of JOB_STATUSES) {
      assert.equal(
        client.jobs_by_status[status],
        domain.jobs_by_status[status]! + northCounts[status]!,
        `the client's ${status} is the sum of its domains'`,
      );
    }

    // Retention deletes the finished jobs of the first domain, aged past a 60 s cutoff.
    await server().db.query(
      `update jobs set finished_at = now() - interval '1 hour'
       where client_id = $1 and domain_id = $2 and finished_at is not null`,
      [tenant.clientId, tenant.domainId],
    );
    const retention = new RetentionService(
      server().db,
      { intervalMs: 60_000, jobsMaxAgeS: 60, budgetMs: 10_000 },
      quietLog,
      new Metrics(),
    );
    const turn = await retention.runOnce();
    assert.equal(
      turn.deleted.jobs,
      (expected['success'] ?? 0) + (expected['failure'] ?? 0) + (expected['cancelled'] ?? 0),
    );
    await sequence(server().db);
    const afterRetention = await stats(server(), tenant.domainPath);
    assert.deepEqual(
      afterRetention.jobs_by_status,
      await countedJobs(server().db, tenant.clientId, tenant.domainId),
    );
    assert.deepEqual(afterRetention.jobs_by_status, {
      ...expected,
      success: 0,
      failure: 0,
      cancelled: 0,
    });
    assert.deepEqual(
      (await stats(server(), `/v2/clients/${tenant.clientId}`)).jobs_by_status,
      await countedJobs(server().db, tenant.clientId),
    );
    await assertCountsAgree(server().db, 'after the mix and retention');
  });

  it('count what entered each status in the minute it happened, over the last 60', async () => {
    const tenant = await createTenant(server());
    const jobs = [];
    for (let i = 0; i < 5; i += 1) jobs.push(await runJob(server(), tenant));
    for (const jobId of jobs.slice(0, 3)) {
      expectBody(
        await server().post(completePath(tenant, jobId), { status: 'success', output: {} }),
        200,
      );
    }
    expectBody(
      await server().post(completePath(tenant, jobs[3]!), { status: 'failure', error: {} }),
      200,
    );
    await sequence(server().db);

    const { throughput, as_of } = await stats(server(), tenant.domainPath);
    assert.equal(throughput.bucket_s, 60);
    assert.equal(throughput.buckets.length, 60);
    assert.equal(throughput.since, throughput.buckets[0]!.at);
    throughput.buckets.forEach((bucket, i) => {
      assert.equal(Date.parse(bucket.at), Date.parse(throughput.since) + i * 60_000);
      for (const status of JOB_STATUSES) assert.equal(typeof bucket[status], 'number');
    });
    const last = Date.parse(throughput.buckets[59]!.at);
    assert.ok(last <= Date.parse(as_of) && Date.parse(as_of) < last + 60_000, 'the last is now');

    // Each completion in the bucket of its minute (the tests may cross a minute boundary).
    const { rows } = await server().db.query<{ minute: Date; status: string; n: number }>(
      `select date_trunc('minute', finished_at, 'UTC') as minute, status, count(*)::int as n
       from jobs where client_id = $1 and finished_at is not null group by 1, 2`,
      [tenant.clientId],
    );
    const expected = new Map<string, Counts>();
    for (const { minute, status, n } of rows) {
      const at = new Date(minute).toISOString();
      expected.set(at, { ...expected.get(at), [status]: n });
    }
    for (const bucket of throughput.buckets) {
      const want = expected.get(bucket.at) ?? {};
      assert.equal(bucket.success, want['success'] ?? 0, `success at ${bucket.at}`);
      assert.equal(bucket.failure, want['failure'] ?? 0, `failure at ${bucket.at}`);
    }
    const sum = (status: string) =>
      throughput.buckets.reduce((total, bucket) => total + (bucket[status] ?? 0), 0);
    assert.deepEqual(
      JOB_STATUSES.map((status) => sum(status)),
      [5, 0, 0, 3, 1, 0],
      'five created (queued), three successes, one failure',
    );
    // The client's throughput is its one domain's.
    const client = await stats(server(), `/v2/clients/${tenant.clientId}`);
    assert.deepEqual(client.throughput.buckets, throughput.buckets);
  });

  it("answers another client's token 403, and unknown clients and domains 404", async () => {
    const tenant = await createTenant(server());
    await runJob(server(), tenant);
    await sequence(server().db);
    const other = await createTenant(server());
    const outsider = await server().token(['read'], { clients: [other.clientId] });
    for (const path of [`${tenant.domainPath}/stats`, `/v2/clients/${tenant.clientId}/stats`]) {
      const refused = await server().get(path, { token: outsider });
      assert.equal(refused.status, 403, path);
      assert.match(errorMessage(refused), /may not act on client/);
      assert.equal(refused.body.jobs_by_status, undefined);
    }
    // Its own client's are open to it, and show none of the other's jobs.
    assert.deepEqual(
      (await stats(server(), other.domainPath, outsider)).jobs_by_status,
      allStatuses([]),
    );
    const reader = await server().token(['read'], { clients: [tenant.clientId] });
    assert.equal((await stats(server(), tenant.domainPath, reader)).jobs_by_status['queued'], 1);
    const noDomain = await server().get(`/v2/clients/${tenant.clientId}/domains/nowhere/stats`);
    assert.equal(noDomain.status, 404);
    assert.equal(
      errorMessage(noDomain),
      `domain "nowhere" not found in client "${tenant.clientId}"`,
    );
    for (const path of ['/v2/clients/nobody/stats', '/v2/clients/nobody/domains/nowhere/stats']) {
      const missing = await server().get(path);
      assert.equal(missing.status, 404, path);
      assert.equal(errorMessage(missing), 'client "nobody" not found');
    }
    // A domain without a job answers zeros, and an hour of empty minutes.
    const empty = `/v2/clients/${tenant.clientId}/domains/empty`;
    assertStatus(await server().put(empty, {}), 201);
    const none = await stats(server(), empty);
    assert.deepEqual(none.jobs_by_status, allStatuses([]));
    assert.ok(none.throughput.buckets.every((b) => JOB_STATUSES.every((s) => b[s] === 0)));
  });
});

for (const backend of testBackends()) {
  describe(`job statistics, the counters themselves [${backend.name}]`, () => {
    it('are backfilled by the migration from the jobs, with pending events counted once', async () => {
      const { db, dispose } = await backend.open({ migrated: false });
      try {
        const before = readMigrations().filter((migration) => migration.id < 17);
        await migrate(db, before);
        await seedJobTarget(db, 'c1');
        await insertJobs(db, 'c1', [
          { tag: 'q1', status: 'queued' },
          { tag: 'q2', status: 'queued' },
          { tag: 'r1', status: 'running' },
          { tag: 's1', status: 'success' },
          { tag: 'f1', status: 'failure' },
        ]);
        // Some changes numbered before the upgrade, the rest still waiting for the sequencer.
        await sequence(db);
        await db.query(
          `update jobs set status = 'dispatched', dispatched_at = now() where input->>'tag' = 'q2'`,
        );
        await insertJobs(db, 'c1', [{ tag: 'c1', status: 'cancelled' }]);
        const { rows: pending } = await db.query<{ n: number }>(
          'select count(*)::int as n from job_events where position is null',
        );
        assert.equal(pending[0]!.n, 2, 'two events wait for the sequencer');

        assert.deepEqual(
          await migrate(
            db,
            readMigrations().filter((migration) => migration.id === 17),
          ),
          ['000017_job_stats'],
        );

        await assertCountsAgree(db, 'right after the migration');
        assert.deepEqual(await countedJobs(db, 'c1', 'd1'), {
          queued: 1,
          dispatched: 1,
          running: 1,
          success: 1,
          failure: 1,
          cancelled: 1,
        });
        const { rows: log } = await db.query<{ head: string; counted_through: string }>(
          'select head::text, counted_through::text from job_event_log',
        );
        assert.equal(log[0]!.counted_through, log[0]!.head);
        // The events the log held are the recent minutes: seven, each in its minute.
        const { rows: activity } = await db.query<{ n: number }>(
          'select sum(count)::int as n from job_activity',
        );
        assert.equal(activity[0]!.n, 7);

        // Changes after the upgrade are counted by the sequencer, once.
        await db.query(
          `update jobs set status = 'success', finished_at = now() where input->>'tag' = 'q1'`,
        );
        await insertJobs(db, 'c1', [{ tag: 'q3', status: 'queued' }]);
        await sequence(db);
        await sequence(db);
        await assertCountsAgree(db, 'after more changes');
        const { rows: moved } = await db.query<{ n: number }>(
          'select sum(count)::int as n from job_activity',
        );
        assert.equal(moved[0]!.n, 9);
      } finally {
        await dispose();
      }
    });

    it('count rows a sequencer of the previous version numbered during the upgrade', async () => {
      const { db, dispose } = await backend.open();
      try {
        await seedJobTarget(db, 'c1');
        await insertJobs(db, 'c1', [
          { tag: 'a', status: 'queued' },
          { tag: 'b', status: 'success' },
        ]);
        // What the function of 000014 did: number the waiting rows, move the head, count nothing
        // (a call that waited for the log's lock while the migration held it runs on with it).
        await db.query(
          `with todo as (
             select seq, row_number() over (order by seq) as n
             from job_events where position is null)
           update job_events e set position = (select head from job_event_log) + todo.n
           from todo where e.seq = todo.seq`,
        );
        await db.query('update job_event_log set head = (select max(position) from job_events)');
        const { rows: none } = await db.query('select * from job_counts');
        assert.deepEqual(none, [], 'nothing counted yet');

        await insertJobs(db, 'c1', [{ tag: 'c', status: 'queued' }]);
        await sequence(db);
        await assertCountsAgree(db, 'after the next turn');
        const { rows: log } = await db.query<{ head: string; counted_through: string }>(
          'select head::text, counted_through::text from job_event_log',
        );
        assert.deepEqual(log[0], { head: '3', counted_through: '3' });
      } finally {
        await dispose();
      }
    });

    it('agree whichever of retention and the sequencer goes first', async () => {
      const { db, dispose } = await backend.open();
      try {
        await seedJobTarget(db, 'c1');
        const retention = new RetentionService(
          db,
          { intervalMs: 60_000, jobsMaxAgeS: 60, budgetMs: 10_000, batch: 2 },
          quietLog,
          new Metrics(),
        );
        const old = (tag: string) => ({
          tag,
          status: 'success' as const,
          createdAgoS: 600,
          finishedAgoS: 300,
        });
        // Retention first: the jobs are deleted before their creation was counted.
        await insertJobs(db, 'c1', [
          old('a1'),
          old('a2'),
          old('a3'),
          { tag: 'q', status: 'queued' },
        ]);
        assert.equal((await retention.runOnce()).deleted.jobs, 3);
        const { rows: below } = await db.query<{ count: number }>(
          `select count::int from job_counts where status = 'success'`,
        );
        assert.deepEqual(below, [{ count: -3 }], 'the sequencer has not counted them yet');
        await sequence(db);
        await assertCountsAgree(db, 'retention, then the sequencer');

        // The sequencer first: counted, then deleted.
        await insertJobs(db, 'c1', [old('b1'), old('b2')]);
        await sequence(db);
        assert.equal((await retention.runOnce()).deleted.jobs, 2);
        await assertCountsAgree(db, 'the sequencer, then retention');
        const { rows } = await db.query<{ status: string; count: number }>(
          'select status, count::int from job_counts order by status',
        );
        assert.deepEqual(rows, [
          { status: 'queued', count: 1 },
          { status: 'success', count: 0 },
        ]);
      } finally {
        await dispose();
      }
    });

    it('keep two hours of activity: retention deletes older minutes', async () => {
      const { db, dispose } = await backend.open();
      try {
        // An hour of recent minutes, and an hour of minutes between 2.5 and 3.5 hours old.
        await db.query(
          `insert into job_activity (client_id, domain_id, minute, status, count)
           select 'c1', 'd1', date_trunc('minute', now()) - make_interval(mins => m), 'success', 1
           from generate_series(0, 59) as m
           union all
           select 'c1', 'd1', date_trunc('minute', now()) - make_interval(mins => 150 + m),
             'success', 1
           from generate_series(0, 59) as m`,
        );
        const retention = new RetentionService(
          db,
          { intervalMs: 60_000, jobsMaxAgeS: undefined, budgetMs: 10_000, batch: 25 },
          quietLog,
          new Metrics(),
        );
        const turn = await retention.runOnce();
        assert.equal(turn.deleted.activity, 60);
        const { rows } = await db.query<{ n: number; recent: boolean }>(
          `select count(*)::int as n, min(minute) >= now() - interval '2 hours' as recent
           from job_activity`,
        );
        assert.deepEqual(rows[0], { n: 60, recent: true });
      } finally {
        await dispose();
      }
    });
  });
}
