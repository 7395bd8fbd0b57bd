import assert from 'node:assert/strict';
import { it } from 'node:test';
import { MAX_CASCADE_DEPTH } from '../../src/domain/lineage.js';
import { completePath, createTenant, runJob, type Tenant } from '../helpers/fixtures.js';
import { describeOnEachBackend, errorMessage, type TestServer } from '../helpers/test-server.js';
import type { Database } from '../../src/db/database.js';
import type { AppContext } from '../../src/usecases/context.js';
import { finishJob, type FinishRequest } from '../../src/usecases/complete-job.usecase.js';

/**
 * The test server's context with a database that counts the statements and transactions its
 * callers start (statements inside a transaction are not counted: the transaction is).
 */
function countingContext(server: TestServer) {
  const calls = { queries: 0, transactions: 0 };
  const db = server.ctx.db;
  const counting: Database = Object.create(db) as Database;
  counting.query = (text, values) => {
    calls.queries++;
    return db.query(text, values);
  };
  counting.transaction = (work) => {
    calls.transactions++;
    return db.transaction(work);
  };
  const ctx: AppContext = { ...server.ctx, db: counting };
  return {
    ctx,
    async during<T>(work: () => Promise<T>) {
      calls.queries = 0;
      calls.transactions = 0;
      const result = await work();
      return { result, calls: { ...calls } };
    },
  };
}

async function subscribe(
  server: TestServer,
  tenant: Tenant,
  action: { assignment_key: string; job_type: string; service_id?: string },
  input: Record<string, unknown> = {},
) {
  const created = await server.post(`${tenant.domainPath}/subscriptions`, {
    source: { model_id: tenant.modelId },
    action,
    input,
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  return created.body.subscription_id as string;
}

describeOnEachBackend('completing jobs', (server) => {
  it('stores a success with its output, and a failure with its error', async () => {
    const tenant = await createTenant(server());
    const ok = await runJob(server(), tenant);
    const done = await server().post(completePath(tenant, ok), {
      status: 'success',
      output: { s3: 's3://bucket/out.json' },
      error: { ignored: true },
    });
    assert.equal(done.status, 200);
    assert.deepEqual(done.body, {
      job_id: ok,
      model_id: tenant.modelId,
      model_version: tenant.version,
      status: 'success',
      triggered_events: [],
    });
    const job = await server().get(`${tenant.domainPath}/jobs/${ok}`);
    assert.equal(job.body.status, 'success');
    assert.deepEqual(job.body.output, { s3: 's3://bucket/out.json' });
    assert.equal(job.body.error, null);
    assert.ok(job.body.finished_at);

    const bad = await runJob(server(), tenant);
    const failed = await server().post(completePath(tenant, bad), {
      status: 'failure',
      error: { code: 'oom' },
    });
    assert.equal(failed.status, 200);
    const failedJob = await server().get(`${tenant.domainPath}/jobs/${bad}`);
    assert.equal(failedJob.body.status, 'failure');
    assert.deepEqual(failedJob.body.error, { code: 'oom' });
  });

  it('replays an identical completion and refuses a different one (409)', async () => {
    const tenant = await createTenant(server());
    const jobId = await runJob(server(), tenant);
    const body = { status: 'success', output: { a: 1, b: [1, 2] } };
    const first = await server().post(completePath(tenant, jobId), body);
    const replay = await server().post(completePath(tenant, jobId), {
      output: { b: [1, 2], a: 1 },
      status: 'success',
    });
    assert.equal(replay.status, first.status);
    assert.deepEqual(replay.body, first.body);

    for (const different of [
      { status: 'failure', error: { x: 1 } },
      { status: 'success', output: { a: 2 } },
      { status: 'success' },
    ]) {
      const refused = await server().post(completePath(tenant, jobId), different);
      assert.equal(refused.status, 409, JSON.stringify(different));
      assert.match(errorMessage(refused), /already completed/);
    }
    const job = await server().get(`${tenant.domainPath}/jobs/${jobId}`);
    assert.deepEqual(job.body.output, { a: 1, b: [1, 2] }, 'the first outcome stands');
  });

  it('404 for a job of another model or version; 409 for cancelled jobs and stale attempts', async () => {
    const tenant = await createTenant(server());
    const jobId = await runJob(server(), tenant);
    const wrongVersion = await server().post(
      `/v2/models/${tenant.modelId}/versions/9.9.9/jobs/${jobId}/complete`,
      { status: 'success' },
    );
    assert.equal(wrongVersion.status, 404);
    const unknown = await server().post(completePath(tenant, '123123123123'), {
      status: 'success',
    });
    assert.equal(unknown.status, 404);
    const stale = await server().post(completePath(tenant, jobId), {
      status: 'success',
      attempt: 3,
    });
    assert.equal(stale.status, 409);
    assert.match(errorMessage(stale), /attempt 3 .* is stale/);
    // Attempts past PostgreSQL's integer are stale too, never a 500 (the fuzz found 1e300).
    for (const attempt of [2 ** 31, 1e300]) {
      const far = await server().post(completePath(tenant, jobId), { status: 'success', attempt });
      assert.equal(far.status, 409, `attempt ${attempt}: ${JSON.stringify(far.body)}`);
      assert.match(errorMessage(far), /is stale/);
    }

    await server().post(`${tenant.domainPath}/jobs/${jobId}/cancel`);
    const cancelled = await server().post(completePath(tenant, jobId), { status: 'success' });
    assert.equal(cancelled.status, 409);
    assert.match(errorMessage(cancelled), /cancelled/);
  });

  it('400 for a bad status or body; 403 without jobs:complete or for another model', async () => {
    const tenant = await createTenant(server());
    const jobId = await runJob(server(), tenant);
    assert.equal(
      (await server().post(completePath(tenant, jobId), { status: 'done' })).status,
      400,
    );
    assert.equal((await server().post(completePath(tenant, jobId), {})).status, 400);
    assert.equal(
      (await server().post(completePath(tenant, jobId), { status: 'success', output: 5 })).status,
      400,
    );
    const writer = await server().token(['jobs:write']);
    assert.equal(
      (await server().post(completePath(tenant, jobId), { status: 'success' }, { token: writer }))
        .status,
      403,
    );
    const otherModel = await server().token(['jobs:complete'], { models: ['other'] });
    assert.equal(
      (
        await server().post(
          completePath(tenant, jobId),
          { status: 'success' },
          { token: otherModel },
        )
      ).status,
      403,
    );
    const handler = await server().token(['jobs:complete'], { models: [tenant.modelId] });
    assert.equal(
      (await server().post(completePath(tenant, jobId), { status: 'success' }, { token: handler }))
        .status,
      200,
    );
  });

  it('fires each matching subscription with the trigger and lineage', async () => {
    const tenant = await createTenant(server());
    const inference = await runJob(server(), tenant, { input: { window: 7 }, subscribe: true });
    const subscription = (
      await server().db.query<{ subscription_id: string }>(
        'select subscription_id from subscriptions where client_id = $1',
        [tenant.clientId],
      )
    ).rows[0]!.subscription_id;
    const done = await server().post(completePath(tenant, inference), {
      status: 'success',
      output: { predictions: 's3://p' },
    });
    assert.equal(done.status, 200);
    assert.equal(done.body.triggered_events.length, 1);
    const event = done.body.triggered_events[0];
    assert.equal(event.subscription_id, subscription);
    assert.match(event.job_id, /^[0-9]{12}$/);

    const training = await server().get(`${tenant.domainPath}/jobs/${event.job_id}`);
    assert.equal(training.body.job_type, 'training');
    assert.equal(training.body.service_id, 'service-1');
    assert.deepEqual(training.body.input, { window: 7 });
    assert.deepEqual(training.body.trigger, {
      subscription_id: subscription,
      job_id: inference,
      output: { predictions: 's3://p' },
    });
    assert.deepEqual(training.body.lineage, [subscription]);
  });

  it('fires nothing for failures and for non-inference jobs', async () => {
    const tenant = await createTenant(server());
    await subscribe(server(), tenant, { assignment_key: 'default', job_type: 'training' });
    const failing = await runJob(server(), tenant);
    const failed = await server().post(completePath(tenant, failing), { status: 'failure' });
    assert.deepEqual(failed.body.triggered_events, []);
    const training = await runJob(server(), tenant, { job_type: 'training' });
    const trained = await server().post(completePath(tenant, training), { status: 'success' });
    assert.deepEqual(trained.body.triggered_events, []);
    const { rows } = await server().db.query('select 1 from jobs where client_id = $1', [
      tenant.clientId,
    ]);
    assert.equal(rows.length, 2, 'no job was started by the subscription');
  });

  it('20 concurrent identical completions fire each subscription exactly once', async () => {
    const tenant = await createTenant(server());
    await subscribe(server(), tenant, {
      assignment_key: 'default',
      job_type: 'training',
      service_id: 'service-1',
    });
    await subscribe(server(), tenant, { assignment_key: 'default', job_type: 'inference' });
    const jobId = await runJob(server(), tenant);
    const answers = await Promise.all(
      Array.from({ length: 20 }, () =>
        server().post(completePath(tenant, jobId), { status: 'success', output: { n: 1 } }),
      ),
    );
    for (const answer of answers) {
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.deepEqual(answer.body, answers[0]!.body);
    }
    assert.equal(answers[0]!.body.triggered_events.length, 2);
    const { rows } = await server().db.query<{ count: number }>(
      "select count(*)::int as count from jobs where client_id = $1 and trigger->>'job_id' = $2",
      [tenant.clientId, jobId],
    );
    assert.equal(rows[0]!.count, 2);
  });

  it('concurrent different completions of a job nothing subscribes to: the first stands', async () => {
    const tenant = await createTenant(server());
    const jobId = await runJob(server(), tenant);
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        server().post(completePath(tenant, jobId), { status: 'success', output: { n: i % 2 } }),
      ),
    );
    const winners = answers.filter((answer) => answer.status === 200);
    const refused = answers.filter((answer) => answer.status === 409);
    assert.equal(winners.length + refused.length, 20, JSON.stringify(answers.map((a) => a.body)));
    const job = await server().get(`${tenant.domainPath}/jobs/${jobId}`);
    const stood = job.body.output.n as number;
    // Every request with the outcome that stood got its answer; every other one was refused.
    assert.equal(winners.length, 10);
    for (const [i, answer] of answers.entries()) {
      assert.equal(answer.status, i % 2 === stood ? 200 : 409, JSON.stringify(answer.body));
    }
    assert.deepEqual(winners[0]!.body.triggered_events, []);
  });

  it('a completion that needs only its job row is one statement; the rest take the lock', async () => {
    const tenant = await createTenant(server());
    const other = await createTenant(server());
    const counted = countingContext(server());
    const report = (jobId: string, extra: Partial<FinishRequest> = {}) =>
      finishJob(counted.ctx, {
        jobId,
        modelId: tenant.modelId,
        modelVersion: tenant.version,
        attempts: [undefined],
        clients: [tenant.clientId],
        outcome: { status: 'success', output: { ok: true } },
        ...extra,
      });

    const plain = await runJob(server(), tenant);
    const done = await counted.during(() => report(plain, { attempts: [0, undefined] }));
    assert.equal(done.result.kind, 'completed');
    assert.deepEqual(done.calls, { queries: 1, transactions: 0 });
    const stored = await server().get(`${tenant.domainPath}/jobs/${plain}`);
    assert.equal(stored.body.status, 'success');
    assert.deepEqual(stored.body.output, { ok: true });

    // A repeat, a stale attempt, another client's reporter: the one statement matches nothing,
    // and the locked path answers as it always did.
    const replay = await counted.during(() => report(plain));
    assert.equal(replay.result.kind, 'replayed');
    assert.deepEqual(replay.calls, { queries: 1, transactions: 1 });
    const open = await runJob(server(), tenant);
    assert.equal((await report(open, { attempts: [1] })).kind, 'stale-attempt');
    assert.equal((await report(open, { clients: [other.clientId] })).kind, 'forbidden');
    assert.equal((await report(open, { modelVersion: '9.9.9' })).kind, 'not-found');
    const still = await server().get(`${tenant.domainPath}/jobs/${open}`);
    assert.equal(still.body.status, 'queued', 'a refused report changed nothing');

    // A success a subscription fires on goes the locked way and starts the subscription's job.
    await subscribe(server(), tenant, { assignment_key: 'default', job_type: 'training' });
    const fired = await counted.during(() => report(open));
    assert.equal(fired.result.kind, 'completed');
    assert.equal(fired.calls.transactions, 1);
    const answer = fired.result.kind === 'completed' ? fired.result.answer.body : undefined;
    assert.equal(answer?.triggered_events.length, 1);
    // A failure fires nothing, so it is plain again.
    const failing = await runJob(server(), tenant);
    const failed = await counted.during(() =>
      report(failing, { outcome: { status: 'failure', error: { why: 'x' } } }),
    );
    assert.deepEqual(failed.calls, { queries: 1, transactions: 0 });
  });

  it('207 when a subscription cannot start its job, with the reason', async () => {
    const tenant = await createTenant(server());
    const good = await subscribe(server(), tenant, {
      assignment_key: 'default',
      job_type: 'training',
      service_id: 'service-1',
    });
    const bad = await subscribe(server(), tenant, {
      assignment_key: 'nowhere',
      job_type: 'inference',
    });
    const jobId = await runJob(server(), tenant);
    const done = await server().post(completePath(tenant, jobId), { status: 'success' });
    assert.equal(done.status, 207);
    const bySubscription = new Map(
      done.body.triggered_events.map((event: { subscription_id: string }) => [
        event.subscription_id,
        event,
      ]),
    );
    assert.match((bySubscription.get(good) as { job_id: string }).job_id, /^[0-9]{12}$/);
    assert.match(
      (bySubscription.get(bad) as { error: string }).error,
      /no active assignment for key "nowhere"/,
    );
    const replay = await server().post(completePath(tenant, jobId), { status: 'success' });
    assert.equal(replay.status, 207);
    assert.deepEqual(replay.body, done.body);
  });

  it('stops a cascade loop', async () => {
    // Completed inference of the model starts more inference of the same model: a loop.
    const tenant = await createTenant(server());
    const loop = await subscribe(server(), tenant, {
      assignment_key: 'default',
      job_type: 'inference',
      service_id: 'service-1',
    });
    const first = await runJob(server(), tenant);
    const fired = await server().post(completePath(tenant, first), { status: 'success' });
    assert.equal(fired.status, 200);
    const second = fired.body.triggered_events[0].job_id as string;
    const stopped = await server().post(completePath(tenant, second), { status: 'success' });
    assert.equal(stopped.status, 207);
    assert.equal(stopped.body.triggered_events[0].subscription_id, loop);
    assert.match(stopped.body.triggered_events[0].error, /cascade loop/);
  });

  it(`stops a cascade deeper than ${MAX_CASCADE_DEPTH}`, async () => {
    const tenant = await createTenant(server());
    const subscriptions: string[] = [];
    for (let i = 0; i <= MAX_CASCADE_DEPTH; i++) {
      subscriptions.push(
        await subscribe(
          server(),
          tenant,
          { assignment_key: 'default', job_type: 'inference', service_id: 'service-1' },
          { hop: i },
        ),
      );
    }
    // Follow one branch: each completion fires every subscription not yet in the lineage.
    let jobId = await runJob(server(), tenant);
    for (let depth = 0; depth < MAX_CASCADE_DEPTH; depth++) {
      const done = await server().post(completePath(tenant, jobId), { status: 'success' });
      const started = done.body.triggered_events.filter((event: object) => 'job_id' in event);
      assert.equal(started.length, MAX_CASCADE_DEPTH + 1 - depth, `depth ${depth}`);
      jobId = started[0].job_id;
    }
    const job = await server().get(`${tenant.domainPath}/jobs/${jobId}`);
    assert.equal(job.body.lineage.length, MAX_CASCADE_DEPTH);
    const last = await server().post(completePath(tenant, jobId), { status: 'success' });
    assert.equal(last.status, 207);
    const errors = last.body.triggered_events.map((event: { error?: string }) => event.error);
    assert.equal(errors.length, MAX_CASCADE_DEPTH + 1);
    assert.equal(errors.filter((e: string) => /cascade too deep/.test(e)).length, 1);
    assert.equal(errors.filter((e: string) => /cascade loop/.test(e)).length, MAX_CASCADE_DEPTH);
  });
});
