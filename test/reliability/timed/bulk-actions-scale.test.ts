import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createTenant } from '../../helpers/fixtures.js';
import { describeOnEachBackend } from '../../helpers/test-server.js';

/**
 * Services init, bulk cancel and bulk retry over 10,000 services, each within a bound. Timed,
 * so it runs alone: beside other test files on two cores, a bulk cancel on PGlite took 8 s in a
 * run where it takes 2 to 3 s alone.
 */

describeOnEachBackend('bulk actions at scale', (server) => {
  it('10,000 services: init, bulk cancel and bulk retry each take seconds, not minutes', async () => {
    // Each once looked a lane's next number up per row, or matched 10,000 rows to 10,000 by a
    // nested loop: 20 to 30 s each on PostgreSQL. The bound leaves room for a slow machine.
    const tenant = await createTenant(server(), { features: [], services: {} });
    await server().db.query(
      `insert into services (client_id, domain_id, service_id, provided_features, resolved_features)
       select $1, $2, 'svc-' || g, '{}', '{}' from generate_series(1, 10000) g`,
      [tenant.clientId, tenant.domainId],
    );
    const timed = async (what: string, path: string, body: unknown) => {
      const started = Date.now();
      const response = await server().post(`${tenant.domainPath}/${path}`, body);
      const ms = Date.now() - started;
      assert.ok(response.status < 300, `${what}: ${response.status}`);
      assert.ok(ms < 6000, `${what} of 10,000 took ${ms} ms`);
      return response.body as { count?: number; dispatched_services?: string[] };
    };
    const init = await timed('init', 'services/init', {});
    assert.equal(init.dispatched_services?.length, 10_000);
    assert.equal((await timed('bulk cancel', 'jobs/cancel', { limit: 10_000 })).count, 10_000);
    const retried = await timed('bulk retry', 'jobs/retry', { status: 'cancelled', limit: 10_000 });
    assert.equal(retried.count, 10_000);
    const { rows } = await server().db.query<{ jobs: number; places: number }>(
      `select count(*)::int as jobs, count(distinct lane_seq)::int as places from jobs
       where client_id = $1 and status = 'queued' and retry_of is not null`,
      [tenant.clientId],
    );
    assert.deepEqual(rows[0], { jobs: 10_000, places: 10_000 }, 'one lane, consecutive places');
  });
});
