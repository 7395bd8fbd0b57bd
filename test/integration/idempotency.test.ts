import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createTenant, runJobPath, type Tenant } from '../helpers/fixtures.js';
import { describeOnEachBackend, errorMessage, type TestServer } from '../helpers/test-server.js';

async function jobCount(server: TestServer, tenant: Tenant): Promise<number> {
  const { rows } = await server.db.query<{ count: number }>(
    'select count(*)::int as count from jobs where client_id = $1',
    [tenant.clientId],
  );
  return rows[0]!.count;
}

describeOnEachBackend('Idempotency-Key', (server) => {
  const run = (tenant: Tenant, key: string, body: unknown = {}, token?: string) =>
    server().post(runJobPath(tenant.domainPath), body, {
      headers: { 'idempotency-key': key },
      token,
    });

  it('replays the first answer for the same key and body, starting nothing more', async () => {
    const tenant = await createTenant(server());
    const first = await run(tenant, 'key-1', { input: { a: 1, b: 2 } });
    assert.equal(first.status, 202);
    const replay = await run(tenant, 'key-1', { input: { b: 2, a: 1 } });
    assert.equal(replay.status, 202);
    assert.deepEqual(replay.body, first.body);
    assert.equal(replay.headers.get('idempotent-replayed'), 'true');
    assert.equal(await jobCount(server(), tenant), 1);

    const init1 = await server().post(`${tenant.domainPath}/services/init`, undefined, {
      headers: { 'idempotency-key': 'init-1' },
    });
    const init2 = await server().post(`${tenant.domainPath}/services/init`, undefined, {
      headers: { 'idempotency-key': 'init-1' },
    });
    assert.deepEqual(init2.body, init1.body);
    assert.equal(await jobCount(server(), tenant), 2);
  });

  it('422 for the same key with a different body or route', async () => {
    const tenant = await createTenant(server());
    await run(tenant, 'key-2', { input: { a: 1 } });
    const different = await run(tenant, 'key-2', { input: { a: 2 } });
    assert.equal(different.status, 422);
    assert.match(errorMessage(different), /different request/);
    const otherRoute = await server().post(`${tenant.domainPath}/services/init`, undefined, {
      headers: { 'idempotency-key': 'key-2' },
    });
    assert.equal(otherRoute.status, 422);
    assert.equal(await jobCount(server(), tenant), 1);
  });

  it('409 while the first request with the key is still in flight', async () => {
    const tenant = await createTenant(server());
    await run(tenant, 'probe', { input: { x: 1 } });
    // A claimed key without an answer is what a request still running (in this or another
    // process) leaves behind.
    await server().db.query(
      `update idempotency_keys set status_code = null, response = null
       where client_id = $1 and key = 'probe'`,
      [tenant.clientId],
    );
    const inFlight = await run(tenant, 'probe', { input: { x: 1 } });
    assert.equal(inFlight.status, 409);
    assert.match(errorMessage(inFlight), /still in progress/);
    assert.equal(await jobCount(server(), tenant), 1);
  });

  it('409 for a truly concurrent duplicate, or a replay: never a second job', async () => {
    const tenant = await createTenant(server());
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => run(tenant, 'race', { input: { n: 1 } })),
    );
    const statuses = answers.map((answer) => answer.status).sort();
    assert.ok(
      statuses.every((status) => status === 202 || status === 409),
      statuses.join(','),
    );
    const ids = new Set(
      answers
        .filter((answer) => answer.status === 202)
        .map((answer) => answer.body.job_id as string),
    );
    assert.equal(ids.size, 1);
    assert.equal(await jobCount(server(), tenant), 1);
  });

  it('keys belong to their caller; a failed request frees its key', async () => {
    const tenant = await createTenant(server(), {
      services: { 'service-1': { route: 'r' } },
    });
    const mine = await run(tenant, 'shared');
    // server().token() signs as subject 'test'; the default admin token is 'test-admin'.
    const theirs = await run(tenant, 'shared', {}, await server().token(['jobs:write']));
    assert.equal(theirs.status, 202);
    assert.notEqual(theirs.body.job_id, mine.body.job_id);

    await server().put(tenant.domainPath, { status: 'inactive' });
    const refused = await run(tenant, 'retry-me');
    assert.equal(refused.status, 422);
    await server().put(tenant.domainPath, { status: 'active' });
    const retried = await run(tenant, 'retry-me');
    assert.equal(retried.status, 202, 'the 422 did not keep the key');
  });

  it('400 for a malformed key', async () => {
    const tenant = await createTenant(server());
    assert.equal((await run(tenant, 'has space')).status, 400);
    assert.equal((await run(tenant, 'x'.repeat(256))).status, 400);
  });
});
