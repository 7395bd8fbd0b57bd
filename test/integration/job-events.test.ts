import assert from 'node:assert/strict';
import { it } from 'node:test';
import { expectBody } from '../helpers/assertions.js';
import { completePath, createTenant, runJob, type Tenant } from '../helpers/fixtures.js';
import { SseClient } from '../helpers/sse-client.js';
import { describeOnEachBackend, errorMessage, type TestServer } from '../helpers/test-server.js';

/** The events the log holds for a domain, in order: what every stream must agree with. */
async function logged(server: TestServer, tenant: Tenant, after = 0) {
  const { rows } = await server.db.query<{ position: string; job_id: string; status: string }>(
    `select position::text as position, job_id, status from job_events
     where client_id = $1 and domain_id = $2 and position > $3 order by position`,
    [tenant.clientId, tenant.domainId, after],
  );
  return rows.map((row) => [row.position, row.job_id, row.status]);
}

const seen = (client: SseClient) =>
  client.jobEvents.map((event) => [event.id, event.data.job_id, event.data.status]);

function open(server: TestServer, tenant: Tenant, headers: Record<string, string> = {}, query = '') {
  return SseClient.open(`${server.url}${tenant.domainPath}/events${query}`, server.adminToken, headers);
}

describeOnEachBackend('job event stream', (server) => {
  it('streams every change of the domain in order, as text/event-stream', async () => {
    const tenant = await createTenant(server());
    const client = await open(server(), tenant);
    try {
      assert.equal(client.status, 200);
      assert.match(String(client.headers['content-type']), /^text\/event-stream/);
      const first = await runJob(server(), tenant, { input: { n: 1 } });
      const second = await runJob(server(), tenant, { input: { n: 2 } });
      expectBody(await server().post(`${tenant.domainPath}/jobs/${second}/cancel`), 200);
      expectBody(await server().post(completePath(tenant, first), { status: 'success', output: {} }), 200);
      await client.until(() => client.jobEvents.length >= 4);
      assert.deepEqual(
        client.jobEvents.map((event) => [event.data.job_id, event.data.status, event.data.previous_status]),
        [
          [first, 'queued', null],
          [second, 'queued', null],
          [second, 'cancelled', 'queued'],
          [first, 'success', 'queued'],
        ],
      );
      const ids = client.jobEvents.map((event) => Number(event.id));
      assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'ids increase');
      const data = client.jobEvents[0]!.data;
      assert.equal(data.job_type, 'inference');
      assert.equal(data.service_id, 'service-1');
      assert.equal(data.attempt, 0);
      assert.match(data.updated_at, /^\d{4}-\d\d-\d\dT/);
      assert.deepEqual(seen(client), await logged(server(), tenant));
    } finally {
      client.close();
    }
  });
});
