import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe, it } from 'node:test';
import { issueToken } from '../../src/auth/token-issuer.js';
import {
  describeOnEachBackend,
  TEST_JWT,
  type ApiResponse,
  type TestServer,
} from '../helpers/test-server.js';
import { assertStatus, expectBody, assertError, assertIso } from '../helpers/assertions.js';
import { base64urlJson } from '../helpers/encoding.js';
import { uniqueId, type FeatureProblem } from '../helpers/fixtures.js';
import { allPageItems, type Page } from '../helpers/paging.js';
import { sleep } from '../helpers/wait.js';

interface Client {
  client_id: string;
  name: string | null;
  created_at: string;
  updated_at: string;
}

interface Domain {
  client_id: string;
  domain_id: string;
  status: string;
  created_at: string;
  updated_at: string;
}

interface Service {
  client_id: string;
  domain_id: string;
  service_id: string;
  status: string;
  provided_features: Record<string, unknown>;
  resolved_features: Record<string, unknown> | null;
  created_at: string;
  updated_at: string;
  departed_at: string | null;
}

const CONTRACT = {
  features: [
    { name: 'route', type: 'string', required: true },
    { name: 'capacity', type: 'integer', default: 60 },
    { name: 'mode', type: 'enum', values: ['bus', 'tram'] },
  ],
};

/** The `problems` of a 422, as the feature names they point at. */
function problemFeatures(response: ApiResponse): string[] {
  const { problems } = response.body as { problems?: FeatureProblem[] };
  assert.ok(Array.isArray(problems), `problems should be a list: ${JSON.stringify(response.body)}`);
  for (const problem of problems) {
    assert.equal(typeof problem.feature, 'string');
    assert.equal(typeof problem.message, 'string');
    assert.notEqual(problem.message, '');
  }
  return problems.map((problem) => problem.feature);
}

async function createClient(s: TestServer, clientId: string) {
  assertStatus(await s.put(`/v2/clients/${clientId}`, {}), 201);
}

/** A fresh client with one domain `dom`; returns the domain path. */
async function createDomain(s: TestServer, prefix: string) {
  const clientId = uniqueId(prefix);
  const domainId = 'dom';
  await createClient(s, clientId);
  assertStatus(await s.put(`/v2/clients/${clientId}/domains/${domainId}`), 201);
  return { clientId, domainId, path: `/v2/clients/${clientId}/domains/${domainId}` };
}

/**
 * Registers a model version with CONTRACT and makes it the domain default assignment. There is
 * no assignment route yet, so the assignment row is written directly.
 */
async function assignDefault(s: TestServer, clientId: string, domainId: string) {
  const modelId = uniqueId('model');
  assertStatus(await s.put(`/v2/models/${modelId}`, { description: 'test model' }), 201);
  assertStatus(await s.put(`/v2/models/${modelId}/versions/1.0.0`, CONTRACT), 201);
  await s.db.query(
    `insert into assignments (client_id, domain_id, scope, key, model_id, model_version)
     values ($1, $2, 'domain', 'default', $3, $4)`,
    [clientId, domainId, modelId, '1.0.0'],
  );
}

describeOnEachBackend('tenants', (server) => {
  describe('clients', () => {
    it('PUT /clients/{c} creates a client: 201 with its name and ISO timestamps', async () => {
      const s = server();
      const clientId = uniqueId('create');
      const before = Date.now();
      const client = expectBody<Client>(
        await s.put(`/v2/clients/${clientId}`, { name: 'Adelaide Metro' }),
        201,
      );
      assert.equal(client.client_id, clientId);
      assert.equal(client.name, 'Adelaide Metro');
      assertIso(client.created_at, 'created_at');
      assertIso(client.updated_at, 'updated_at');
      assert.ok(Math.abs(Date.parse(client.created_at) - before) < 60_000, 'created_at is now');
    });

    it('PUT /clients/{c} with no body creates a client without a name', async () => {
      const s = server();
      const clientId = uniqueId('noname');
      const client = expectBody<Client>(await s.put(`/v2/clients/${clientId}`), 201);
      assert.equal(client.client_id, clientId);
      assert.equal(client.name, null);
    });

    it('PUT /clients/{c} on an existing client updates it: 200, created_at kept', async () => {
      const s = server();
      const clientId = uniqueId('update');
      const first = expectBody<Client>(
        await s.put(`/v2/clients/${clientId}`, { name: 'Old name' }),
        201,
      );
      await sleep(5);
      const second = expectBody<Client>(
        await s.put(`/v2/clients/${clientId}`, { name: 'New name' }),
        200,
      );
      assert.equal(second.client_id, clientId);
      assert.equal(second.name, 'New name');
      assert.equal(second.created_at, first.created_at);
      assertIso(second.updated_at, 'updated_at');
      assert.ok(Date.parse(second.updated_at) >= Date.parse(first.updated_at));

      const got = expectBody<Client>(await s.get(`/v2/clients/${clientId}`), 200);
      assert.equal(got.name, 'New name');
    });

    it('PUT /clients/{c} without a name (no body, or {}) keeps the stored name', async () => {
      const s = server();
      const clientId = uniqueId('keep');
      assertStatus(await s.put(`/v2/clients/${clientId}`, { name: 'Keep me' }), 201);

      const noBody = expectBody<Client>(await s.put(`/v2/clients/${clientId}`), 200);
      assert.equal(noBody.name, 'Keep me');
      const emptyBody = expectBody<Client>(await s.put(`/v2/clients/${clientId}`, {}), 200);
      assert.equal(emptyBody.name, 'Keep me');
      const got = expectBody<Client>(await s.get(`/v2/clients/${clientId}`), 200);
      assert.equal(got.name, 'Keep me');
    });

    it('GET /clients/{c} answers the stored client', async () => {
      const s = server();
      const clientId = uniqueId('getone');
      const put = expectBody<Client>(
        await s.put(`/v2/clients/${clientId}`, { name: 'Get me' }),
        201,
      );
      const got = expectBody<Client>(await s.get(`/v2/clients/${clientId}`), 200);
      assert.deepEqual(got, put);
    });

    it('GET /clients/{c} of an unknown client is a 404 naming the client', async () => {
      const s = server();
      const clientId = uniqueId('missing');
      assertError(await s.get(`/v2/clients/${clientId}`), 404, `"${clientId}"`);
    });
  });

  describe('ids and malformed bodies', () => {
    it('a client, domain or service id with characters outside A-Za-z0-9._- is a 400', async () => {
      const s = server();
      for (const id of ['bad%20id', 'bad%2Fid', 'caf%C3%A9', 'a%2Bb']) {
        assertError(await s.put(`/v2/clients/${id}`, { name: 'x' }), 400, 'client_id');
        assertError(await s.get(`/v2/clients/${id}`), 400, 'client_id');
        assertError(await s.put(`/v2/clients/${id}/domains/dom`), 400, 'client_id');
        assertError(await s.get(`/v2/clients/ok/domains/${id}`), 400, 'domain_id');
        assertError(await s.get(`/v2/clients/ok/domains/dom/services/${id}`), 400, 'service_id');
      }
    });

    it('a 129-character id in the path is a 400 with the error body', async () => {
      const s = server();
      const id = 'x'.repeat(129);
      assertError(await s.put(`/v2/clients/${id}`, { name: 'x' }), 400);
      assertError(await s.get(`/v2/clients/${id}`), 400);
      assertError(await s.get(`/v2/clients/ok/domains/${id}`), 400);
      assertError(await s.get(`/v2/clients/ok/domains/dom/services/${id}`), 400);
    });

    it('client and domain ids of 101 to 128 characters are accepted', async () => {
      const s = server();
      const medium = `${uniqueId('medium')}-`.padEnd(101, 'x');
      assertStatus(await s.put(`/v2/clients/${medium}`), 201);
      const clientId = `${uniqueId('long')}-`.padEnd(128, 'x');
      const put = expectBody<Client>(await s.put(`/v2/clients/${clientId}`, { name: 'Long' }), 201);
      assert.equal(put.client_id, clientId);
      const got = expectBody<Client>(await s.get(`/v2/clients/${clientId}`), 200);
      assert.equal(got.client_id, clientId);
      assertStatus(await s.put(`/v2/clients/${clientId}/domains/${'d'.repeat(128)}`), 201);
    });

    it('PUT /clients/{c} with a name that is not a string is a 400 naming name', async () => {
      const s = server();
      const clientId = uniqueId('badname');
      assertError(await s.put(`/v2/clients/${clientId}`, { name: 5 }), 400, 'name');
      assertError(await s.get(`/v2/clients/${clientId}`), 404);
    });

    it('PUT /clients/{c} with an unknown body field is a 400 and stores nothing', async () => {
      const s = server();
      const clientId = uniqueId('extra');
      assertError(await s.put(`/v2/clients/${clientId}`, { name: 'x', colour: 'red' }), 400);
      assertError(await s.get(`/v2/clients/${clientId}`), 404);
    });

    it('PUT /clients/{c} with a malformed body is a 400 and stores nothing', async () => {
      const s = server();
      const clientId = uniqueId('malformed');
      assertError(await s.call('PUT', `/v2/clients/${clientId}`, { rawBody: '{"name":' }), 400);
      assertError(await s.put(`/v2/clients/${clientId}`, ['name']), 400);
      assertError(await s.put(`/v2/clients/${clientId}`, { name: 'n'.repeat(257) }), 400, 'name');
      assertError(await s.get(`/v2/clients/${clientId}`), 404);
    });
  });

  describe('client listing', () => {
    it('GET /clients pages through more clients than limit with next_cursor', async () => {
      const s = server();
      const prefix = uniqueId('page');
      const ids = Array.from({ length: 7 }, (_, i) => `${prefix}-${String(i).padStart(2, '0')}`);
      for (const id of [...ids].reverse()) await createClient(s, id);
      const token = await s.token(['read'], { clients: ids });

      const pages = await allPageItems<Client>(s, '/v2/clients', { limit: 3, token });
      assert.deepEqual(
        pages.map((page) => page.length),
        [3, 3, 1],
      );
      const listed = pages.flat().map((client) => client.client_id);
      assert.equal(new Set(listed).size, listed.length, 'no duplicates');
      assert.deepEqual(listed, ids, 'every client once, in client_id order');

      // When the last page is exactly full, it still says there is nothing more.
      const exact = await allPageItems<Client>(s, '/v2/clients', { limit: 7, token });
      assert.deepEqual(
        exact.map((page) => page.length),
        [7],
      );
    });

    it('GET /clients with an admin token lists every client across pages without duplicates', async () => {
      const s = server();
      const prefix = uniqueId('adminlist');
      const ids = [`${prefix}-a`, `${prefix}-b`, `${prefix}-c`];
      for (const id of ids) await createClient(s, id);
      const pages = await allPageItems<Client>(s, '/v2/clients', { limit: 2, token: s.adminToken });
      const listed = pages.flat().map((client) => client.client_id);
      assert.equal(new Set(listed).size, listed.length, 'no duplicates');
      assert.deepEqual(
        listed.filter((id) => id.startsWith(`${prefix}-`)),
        ids,
      );
      const count = await s.db.query<{ n: number }>('select count(*)::int as n from clients');
      assert.equal(listed.length, count.rows[0]?.n);
    });

    it('GET /clients with a garbage cursor is a 400', async () => {
      const s = server();
      for (const cursor of [
        'garbage',
        base64urlJson([1]),
        base64urlJson(['a', 'b']),
        base64urlJson({}),
      ]) {
        assertError(await s.get(`/v2/clients?cursor=${encodeURIComponent(cursor)}`), 400, 'cursor');
      }
    });

    it('GET /clients with limit outside 1..500 is a 400', async () => {
      const s = server();
      for (const limit of ['0', '501', '-1', 'abc', '2.5']) {
        assertError(await s.get(`/v2/clients?limit=${limit}`), 400, 'limit');
      }
      assertStatus(await s.get('/v2/clients?limit=500'), 200);
      assertStatus(await s.get('/v2/clients?limit=1'), 200);
    });

    it("GET /clients lists only the clients the token's clients claim names", async () => {
      const s = server();
      const prefix = uniqueId('claim');
      const [a, b, c] = [`${prefix}-a`, `${prefix}-b`, `${prefix}-c`];
      for (const id of [a, b, c]) await createClient(s, id);
      const token = await s.token(['read'], { clients: [a, b, `${prefix}-never-created`] });
      const page = expectBody<Page<Client>>(await s.get('/v2/clients', { token }), 200);
      assert.deepEqual(
        page.items.map((client) => client.client_id),
        [a, b],
      );
      assert.equal(page.next_cursor, null);

      const noneToken = await s.token(['read'], { clients: [] });
      const none = expectBody<Page<Client>>(await s.get('/v2/clients', { token: noneToken }), 200);
      assert.deepEqual(none, { items: [], next_cursor: null });
    });
  });

  describe('domains', () => {
    it('PUT a domain under an unknown client is a 404 naming the client', async () => {
      const s = server();
      const clientId = uniqueId('nodomclient');
      const response = await s.put(`/v2/clients/${clientId}/domains/dom`, { status: 'active' });
      assertError(response, 404, `"${clientId}"`);
      assertError(await s.get(`/v2/clients/${clientId}`), 404);
    });

    it('PUT a domain creates it active by default, updates its status, and keeps it when absent', async () => {
      const s = server();
      const clientId = uniqueId('dom');
      await createClient(s, clientId);
      const path = `/v2/clients/${clientId}/domains/south`;

      const created = expectBody<Domain>(await s.put(path), 201);
      assert.equal(created.client_id, clientId);
      assert.equal(created.domain_id, 'south');
      assert.equal(created.status, 'active');
      assertIso(created.created_at, 'created_at');
      assertIso(created.updated_at, 'updated_at');

      const inactive = expectBody<Domain>(await s.put(path, { status: 'inactive' }), 200);
      assert.equal(inactive.status, 'inactive');
      assert.equal(inactive.created_at, created.created_at);

      const noBody = expectBody<Domain>(await s.put(path), 200);
      assert.equal(noBody.status, 'inactive');
      const emptyBody = expectBody<Domain>(await s.put(path, {}), 200);
      assert.equal(emptyBody.status, 'inactive');

      const got = expectBody<Domain>(await s.get(path), 200);
      assert.equal(got.status, 'inactive');
      assert.equal(got.created_at, created.created_at);

      const active = expectBody<Domain>(await s.put(path, { status: 'active' }), 200);
      assert.equal(active.status, 'active');
    });

    it('PUT a domain created inactive answers 201 inactive', async () => {
      const s = server();
      const clientId = uniqueId('dominactive');
      await createClient(s, clientId);
      const domain = expectBody<Domain>(
        await s.put(`/v2/clients/${clientId}/domains/d1`, { status: 'inactive' }),
        201,
      );
      assert.equal(domain.status, 'inactive');
    });

    it('PUT a domain with an invalid status or unknown field is a 400 and stores nothing', async () => {
      const s = server();
      const clientId = uniqueId('dombad');
      await createClient(s, clientId);
      const path = `/v2/clients/${clientId}/domains/d1`;
      assertError(await s.put(path, { status: 'paused' }), 400, 'status');
      assertError(await s.put(path, { status: 1 }), 400, 'status');
      assertError(await s.put(path, { region: 'north' }), 400);
      assertError(await s.get(path), 404);
    });

    it('GET an unknown domain is a 404 naming the domain; under an unknown client, the client', async () => {
      const s = server();
      const clientId = uniqueId('domget');
      await createClient(s, clientId);
      assertError(await s.get(`/v2/clients/${clientId}/domains/nowhere`), 404, '"nowhere"');
      const ghost = uniqueId('ghost');
      assertError(await s.get(`/v2/clients/${ghost}/domains/nowhere`), 404, `"${ghost}"`);
    });

    it("GET /clients/{c}/domains lists that client's domains, paged; unknown client 404", async () => {
      const s = server();
      const clientId = uniqueId('domlist');
      const other = uniqueId('domlist-other');
      await createClient(s, clientId);
      await createClient(s, other);
      for (const d of ['d3', 'd1', 'd2']) {
        assertStatus(await s.put(`/v2/clients/${clientId}/domains/${d}`), 201);
      }
      assertStatus(await s.put(`/v2/clients/${other}/domains/d0`), 201);

      const pages = await allPageItems<Domain>(s, `/v2/clients/${clientId}/domains`, {
        limit: 2,
        token: s.adminToken,
      });
      assert.deepEqual(
        pages.map((page) => page.map((domain) => domain.domain_id)),
        [['d1', 'd2'], ['d3']],
      );
      assert.ok(pages.flat().every((domain) => domain.client_id === clientId));

      const empty = uniqueId('domlist-empty');
      await createClient(s, empty);
      const none = expectBody<Page<Domain>>(await s.get(`/v2/clients/${empty}/domains`), 200);
      assert.deepEqual(none, { items: [], next_cursor: null });

      const ghost = uniqueId('ghost');
      assertError(await s.get(`/v2/clients/${ghost}/domains`), 404, `"${ghost}"`);
      assertError(await s.get(`/v2/clients/${clientId}/domains?cursor=garbage`), 400, 'cursor');
      assertError(await s.get(`/v2/clients/${clientId}/domains?limit=0`), 400, 'limit');
    });
  });

  describe('services', () => {
    it('PUT a service without a domain default: 201, provided_features stored whole, resolved null', async () => {
      const s = server();
      const { clientId, domainId, path } = await createDomain(s, 'svc');
      const provided = {
        route: 'r1',
        capacity: 'not checked without a contract',
        nested: { a: [1, 2, { b: null }] },
        list: ['x', 'y'],
        flag: false,
      };
      const service = expectBody<Service>(
        await s.put(`${path}/services/s1`, { provided_features: provided }),
        201,
      );
      assert.equal(service.client_id, clientId);
      assert.equal(service.domain_id, domainId);
      assert.equal(service.service_id, 's1');
      assert.equal(service.status, 'active');
      assert.deepEqual(service.provided_features, provided);
      assert.equal(service.resolved_features, null);
      assert.equal(service.departed_at, null);
      assertIso(service.created_at, 'created_at');
      assertIso(service.updated_at, 'updated_at');

      const got = expectBody<Service>(await s.get(`${path}/services/s1`), 200);
      assert.deepEqual(got, service);
    });

    it('PUT a service with no body creates it with empty provided_features', async () => {
      const s = server();
      const { path } = await createDomain(s, 'svcempty');
      const service = expectBody<Service>(await s.put(`${path}/services/s1`), 201);
      assert.deepEqual(service.provided_features, {});
      assert.equal(service.resolved_features, null);
      assert.equal(service.status, 'active');
    });

    it('PUT an existing service: 200, created_at kept, features replaced or kept when absent', async () => {
      const s = server();
      const { path } = await createDomain(s, 'svcupd');
      const url = `${path}/services/s1`;
      const created = expectBody<Service>(
        await s.put(url, { provided_features: { route: 'r1' } }),
        201,
      );

      const updated = expectBody<Service>(
        await s.put(url, { provided_features: { route: 'r2' } }),
        200,
      );
      assert.deepEqual(updated.provided_features, { route: 'r2' });
      assert.equal(updated.created_at, created.created_at);

      const kept = expectBody<Service>(await s.put(url, {}), 200);
      assert.deepEqual(kept.provided_features, { route: 'r2' });
      assert.equal(kept.status, 'active');
    });

    it('PUT a service under an unknown domain or client is a 404 naming it', async () => {
      const s = server();
      const { clientId } = await createDomain(s, 'svc404');
      const body = { provided_features: { route: 'r1' } };
      const response = await s.put(`/v2/clients/${clientId}/domains/nowhere/services/s1`, body);
      assertError(response, 404, '"nowhere"');
      const ghost = uniqueId('ghost');
      assertError(await s.put(`/v2/clients/${ghost}/domains/dom/services/s1`, body), 404, ghost);
      assertError(await s.get(`/v2/clients/${clientId}/domains/nowhere/services/s1`), 404);
    });

    it('GET an unknown service is a 404 naming the service', async () => {
      const s = server();
      const { path } = await createDomain(s, 'svcget');
      assertError(await s.get(`${path}/services/nobody`), 404, '"nobody"');
    });

    it('PUT a service with a malformed body is a 400 and stores nothing', async () => {
      const s = server();
      const { path } = await createDomain(s, 'svcbad');
      const url = `${path}/services/s1`;
      assertError(await s.put(url, { provided_features: ['route'] }), 400, 'provided_features');
      assertError(await s.put(url, { provided_features: 'route' }), 400, 'provided_features');
      assertError(await s.put(url, { status: 'gone' }), 400, 'status');
      assertError(await s.put(url, { features: { route: 'r1' } }), 400);
      assertError(await s.put(`${path}/services/bad%20id`, {}), 400);
      assertError(await s.get(url), 404);
    });
  });

  describe('services under a domain default', () => {
    it('with a domain default, a service resolves against its contract; unknown keys stay provided only', async () => {
      const s = server();
      const { clientId, domainId, path } = await createDomain(s, 'resolve');
      await assignDefault(s, clientId, domainId);

      const service = expectBody<Service>(
        await s.put(`${path}/services/s1`, { provided_features: { route: 'r1', extra: 1 } }),
        201,
      );
      assert.deepEqual(service.provided_features, { route: 'r1', extra: 1 });
      assert.deepEqual(service.resolved_features, { route: 'r1', capacity: 60 });

      const got = expectBody<Service>(await s.get(`${path}/services/s1`), 200);
      assert.deepEqual(got.provided_features, { route: 'r1', extra: 1 });
      assert.deepEqual(got.resolved_features, { route: 'r1', capacity: 60 });

      const full = expectBody<Service>(
        await s.put(`${path}/services/s2`, {
          provided_features: { route: 'r2', capacity: 12, mode: 'tram' },
        }),
        201,
      );
      assert.deepEqual(full.resolved_features, { route: 'r2', capacity: 12, mode: 'tram' });
    });

    it('with a domain default, a service missing a required feature is a 422 naming it, stored nowhere', async () => {
      const s = server();
      const { clientId, domainId, path } = await createDomain(s, 'missing');
      await assignDefault(s, clientId, domainId);

      const response = await s.put(`${path}/services/s1`, { provided_features: { capacity: 3 } });
      assertError(response, 422, 'route');
      assert.deepEqual(problemFeatures(response), ['route']);

      assertError(await s.get(`${path}/services/s1`), 404);
      const list = expectBody<Page<Service>>(await s.get(`${path}/services`), 200);
      assert.deepEqual(list.items, []);
    });

    it('with a domain default, a feature of the wrong type is a 422 naming it', async () => {
      const s = server();
      const { clientId, domainId, path } = await createDomain(s, 'wrongtype');
      await assignDefault(s, clientId, domainId);

      const response = await s.put(`${path}/services/s1`, {
        provided_features: { route: 'r1', capacity: 'x' },
      });
      assertError(response, 422, 'capacity');
      assert.deepEqual(problemFeatures(response), ['capacity']);
      assertError(await s.get(`${path}/services/s1`), 404);

      // Every problem is named at once.
      const many = await s.put(`${path}/services/s2`, {
        provided_features: { capacity: 1.5, mode: 'plane' },
      });
      assertError(many, 422, 'route', 'capacity', 'mode');
      assert.deepEqual(problemFeatures(many).sort(), ['capacity', 'mode', 'route']);
    });

    it('with a domain default, updating a valid service with bad features is a 422 that changes nothing', async () => {
      const s = server();
      const { clientId, domainId, path } = await createDomain(s, 'badupdate');
      await assignDefault(s, clientId, domainId);
      const created = expectBody<Service>(
        await s.put(`${path}/services/s1`, { provided_features: { route: 'r1' } }),
        201,
      );

      const response = await s.put(`${path}/services/s1`, {
        provided_features: { route: 7, capacity: 10 },
      });
      assertError(response, 422, 'route');
      assert.deepEqual(problemFeatures(response), ['route']);

      const got = expectBody<Service>(await s.get(`${path}/services/s1`), 200);
      assert.deepEqual(got, created);
    });

    it('with a domain default, a departed service with bad features is accepted with resolved null', async () => {
      const s = server();
      const { clientId, domainId, path } = await createDomain(s, 'departedbad');
      await assignDefault(s, clientId, domainId);

      const created = expectBody<Service>(
        await s.put(`${path}/services/s1`, {
          status: 'departed',
          provided_features: { capacity: 'x' },
        }),
        201,
      );
      assert.equal(created.status, 'departed');
      assert.deepEqual(created.provided_features, { capacity: 'x' });
      assert.equal(created.resolved_features, null);
      assertIso(created.departed_at, 'departed_at');

      // An existing valid service may depart through PUT with features that no longer resolve.
      assertStatus(await s.put(`${path}/services/s2`, { provided_features: { route: 'r2' } }), 201);
      const updated = expectBody<Service>(
        await s.put(`${path}/services/s2`, {
          status: 'departed',
          provided_features: { route: false },
        }),
        200,
      );
      assert.equal(updated.status, 'departed');
      assert.deepEqual(updated.provided_features, { route: false });
      assert.equal(updated.resolved_features, null);
      assertIso(updated.departed_at, 'departed_at');

      const got = expectBody<Service>(await s.get(`${path}/services/s2`), 200);
      assert.deepEqual(got, updated);
    });
  });

  describe('departing services', () => {
    it('POST .../depart marks a service departed: 200 with departed_at, features kept', async () => {
      const s = server();
      const { path } = await createDomain(s, 'depart');
      const created = expectBody<Service>(
        await s.put(`${path}/services/s1`, { provided_features: { route: 'r1' } }),
        201,
      );

      const departed = expectBody<Service>(await s.post(`${path}/services/s1/depart`), 200);
      assert.equal(departed.service_id, 's1');
      assert.equal(departed.status, 'departed');
      assertIso(departed.departed_at, 'departed_at');
      assert.deepEqual(departed.provided_features, { route: 'r1' });
      assert.equal(departed.created_at, created.created_at);

      const got = expectBody<Service>(await s.get(`${path}/services/s1`), 200);
      assert.equal(got.status, 'departed');
      assert.equal(got.departed_at, departed.departed_at);
    });

    it('POST .../depart with an empty JSON body or a JSON content type and no body works', async () => {
      const s = server();
      const { path } = await createDomain(s, 'departbody');
      assertStatus(await s.put(`${path}/services/s1`), 201);
      assertStatus(await s.put(`${path}/services/s2`), 201);
      assertStatus(await s.post(`${path}/services/s1/depart`, {}), 200);
      const bare = await s.call('POST', `${path}/services/s2/depart`, {
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(expectBody<Service>(bare, 200).status, 'departed');
    });

    it('departing twice keeps the first departed_at', async () => {
      const s = server();
      const { path } = await createDomain(s, 'departtwice');
      assertStatus(await s.put(`${path}/services/s1`), 201);
      const first = expectBody<Service>(await s.post(`${path}/services/s1/depart`), 200);
      await sleep(20);
      const second = expectBody<Service>(await s.post(`${path}/services/s1/depart`), 200);
      assert.equal(second.status, 'departed');
      assert.equal(second.departed_at, first.departed_at);

      // A PUT that leaves status out keeps the service departed, with the same departed_at.
      const put = expectBody<Service>(
        await s.put(`${path}/services/s1`, { provided_features: { route: 'r9' } }),
        200,
      );
      assert.equal(put.status, 'departed');
      assert.equal(put.departed_at, first.departed_at);
    });

    it('POST .../depart of an unknown service, domain or client is a 404 naming it', async () => {
      const s = server();
      const { clientId, path } = await createDomain(s, 'depart404');
      assertError(await s.post(`${path}/services/nobody/depart`), 404, '"nobody"');
      assertError(
        await s.post(`/v2/clients/${clientId}/domains/nowhere/services/s1/depart`),
        404,
        '"nowhere"',
      );
      const ghost = uniqueId('ghost');
      assertError(await s.post(`/v2/clients/${ghost}/domains/dom/services/s1/depart`), 404, ghost);
    });
  });

  describe('service listing', () => {
    it('GET .../services filters by status and pages', async () => {
      const s = server();
      const { path } = await createDomain(s, 'svclist');
      for (const id of ['s5', 's1', 's4', 's2', 's3']) {
        assertStatus(await s.put(`${path}/services/${id}`), 201);
      }
      assertStatus(await s.post(`${path}/services/s2/depart`), 200);
      assertStatus(await s.post(`${path}/services/s4/depart`), 200);
      // Another domain's services are not listed.
      const { path: otherPath } = await createDomain(s, 'svclist-other');
      assertStatus(await s.put(`${otherPath}/services/s0`), 201);

      const list = async (query: string) => {
        const page = expectBody<Page<Service>>(await s.get(`${path}/services${query}`), 200);
        assert.equal(page.next_cursor, null);
        return page.items;
      };
      const departed = await list('?status=departed');
      assert.deepEqual(
        departed.map((service) => service.service_id),
        ['s2', 's4'],
      );
      assert.ok(departed.every((service) => typeof service.departed_at === 'string'));
      const active = await list('?status=active');
      assert.deepEqual(
        active.map((service) => service.service_id),
        ['s1', 's3', 's5'],
      );
      assert.ok(active.every((service) => service.departed_at === null));
      assert.deepEqual(
        (await list('')).map((service) => service.service_id),
        ['s1', 's2', 's3', 's4', 's5'],
      );

      const pages = await allPageItems<Service>(s, `${path}/services?status=active`, {
        limit: 2,
        token: s.adminToken,
      });
      assert.deepEqual(
        pages.map((page) => page.map((service) => service.service_id)),
        [['s1', 's3'], ['s5']],
      );
      const all = await allPageItems<Service>(s, `${path}/services`, {
        limit: 2,
        token: s.adminToken,
      });
      assert.deepEqual(
        all.map((page) => page.length),
        [2, 2, 1],
      );

      assertError(await s.get(`${path}/services?status=gone`), 400, 'status');
      assertError(await s.get(`${path}/services?cursor=garbage`), 400, 'cursor');
      assertError(await s.get(`${path}/services?limit=501`), 400, 'limit');
    });

    it('GET .../services of an unknown domain is a 404', async () => {
      const s = server();
      const { clientId } = await createDomain(s, 'svclist404');
      assertError(
        await s.get(`/v2/clients/${clientId}/domains/nowhere/services`),
        404,
        '"nowhere"',
      );
    });
  });

  describe('permissions', () => {
    it('a read-only token gets 403 on every tenant write and stores nothing', async () => {
      const s = server();
      const { clientId, path } = await createDomain(s, 'readonly');
      assertStatus(await s.put(`${path}/services/s1`), 201);
      const token = await s.token(['read']);
      const fresh = uniqueId('readonly-new');

      assertError(
        await s.put(`/v2/clients/${fresh}`, { name: 'x' }, { token }),
        403,
        'tenants:write',
      );
      assertError(await s.put(`/v2/clients/${clientId}/domains/d2`, {}, { token }), 403);
      assertError(await s.put(`${path}/services/s2`, {}, { token }), 403);
      assertError(await s.post(`${path}/services/s1/depart`, undefined, { token }), 403);

      assertError(await s.get(`/v2/clients/${fresh}`), 404);
      assertError(await s.get(`/v2/clients/${clientId}/domains/d2`), 404);
      assertError(await s.get(`${path}/services/s2`), 404);
      const service = expectBody<Service>(await s.get(`${path}/services/s1`, { token }), 200);
      assert.equal(service.status, 'active');
    });

    it('a token with only other write scopes gets 403 on tenant writes', async () => {
      const s = server();
      const token = await s.token(['registry:write', 'assignments:write', 'jobs:write']);
      const clientId = uniqueId('otherscopes');
      assertError(await s.put(`/v2/clients/${clientId}`, {}, { token }), 403, 'tenants:write');
      assertError(await s.get(`/v2/clients/${clientId}`), 404);
    });

    it('a tenants:write token without read gets 403 on GETs but may write', async () => {
      const s = server();
      const token = await s.token(['tenants:write']);
      const clientId = uniqueId('writeonly');
      assertStatus(await s.put(`/v2/clients/${clientId}`, { name: 'w' }, { token }), 201);
      const path = `/v2/clients/${clientId}/domains/dom`;
      assertStatus(await s.put(path, {}, { token }), 201);
      assertStatus(await s.put(`${path}/services/s1`, {}, { token }), 201);
      assertStatus(await s.post(`${path}/services/s1/depart`, undefined, { token }), 200);

      assertError(await s.get(`/v2/clients/${clientId}`, { token }), 403, '"read"');
      assertError(await s.get('/v2/clients', { token }), 403);
      assertError(await s.get(`/v2/clients/${clientId}/domains`, { token }), 403);
      assertError(await s.get(path, { token }), 403);
      assertError(await s.get(`${path}/services`, { token }), 403);
      assertError(await s.get(`${path}/services/s1`, { token }), 403);
    });

    it("a token for client a gets 403 on client b's resources, even when b does not exist", async () => {
      const s = server();
      const { clientId: a, path: pathA } = await createDomain(s, 'grant-a');
      const { clientId: b, path: pathB } = await createDomain(s, 'grant-b');
      assertStatus(await s.put(`${pathB}/services/s1`), 201);
      const token = await s.token(['read', 'tenants:write'], { clients: [a] });

      assertError(await s.get(`/v2/clients/${b}`, { token }), 403, `"${b}"`);
      assertError(await s.put(`/v2/clients/${b}`, { name: 'taken' }, { token }), 403);
      assertError(await s.get(pathB, { token }), 403, `"${b}"`);
      assertError(await s.put(pathB, { status: 'inactive' }, { token }), 403, `"${b}"`);
      assertError(await s.get(`/v2/clients/${b}/domains`, { token }), 403);
      assertError(await s.get(`${pathB}/services`, { token }), 403);
      assertError(await s.get(`${pathB}/services/s1`, { token }), 403);
      assertError(await s.put(`${pathB}/services/s1`, {}, { token }), 403);
      assertError(await s.post(`${pathB}/services/s1/depart`, undefined, { token }), 403);
      const ghost = uniqueId('ghost');
      assertError(await s.get(`/v2/clients/${ghost}`, { token }), 403);

      // b is untouched; a is fully usable.
      assert.equal(expectBody<Client>(await s.get(`/v2/clients/${b}`), 200).name, null);
      assert.equal(expectBody<Domain>(await s.get(pathB), 200).status, 'active');
      assert.equal(expectBody<Service>(await s.get(`${pathB}/services/s1`), 200).status, 'active');
      assertStatus(await s.get(`/v2/clients/${a}`, { token }), 200);
      assertStatus(await s.put(pathA, { status: 'inactive' }, { token }), 200);
      assertStatus(await s.put(`${pathA}/services/s1`, {}, { token }), 201);
      assertStatus(await s.get(`${pathA}/services/s1`, { token }), 200);
    });

    it('requests without a valid token are a 401', async () => {
      const s = server();
      const { clientId, path } = await createDomain(s, 'noauth');
      const foreign = await issueToken(crypto.randomBytes(32), TEST_JWT, {
        subject: 'intruder',
        scopes: ['admin'],
        ttl: '1h',
      });
      for (const token of [null, 'not-a-jwt', foreign]) {
        assertError(await s.get('/v2/clients', { token }), 401);
        assertError(await s.get(`/v2/clients/${clientId}`, { token }), 401);
        assertError(await s.put(`/v2/clients/${uniqueId('noauth-new')}`, {}, { token }), 401);
        assertError(await s.put(path, {}, { token }), 401);
        assertError(await s.put(`${path}/services/s1`, {}, { token }), 401);
        assertError(await s.post(`${path}/services/s1/depart`, undefined, { token }), 401);
      }
      const basic = { headers: { authorization: 'Basic dXNlcjpwYXNz' }, token: null };
      assertError(await s.get('/v2/clients', basic), 401);
      assertError(await s.get(`${path}/services/s1`), 404);
    });

    it('a malformed request is a 400 before the permission check', async () => {
      const s = server();
      const token = await s.token(['read']);
      assertError(await s.put(`/v2/clients/${uniqueId('order')}`, { name: 5 }, { token }), 400);
    });
  });
});
