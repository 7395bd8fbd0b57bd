import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  describeOnEachBackend,
  errorMessage,
  type ApiResponse,
  type TestServer,
} from '../helpers/test-server.js';
import { assertStatus, expectBody, assertError, assertIso } from '../helpers/assertions.js';
import { base64urlJson } from '../helpers/encoding.js';
import { uniqueId, type FeatureProblem } from '../helpers/fixtures.js';
import { allPageItems, type Page } from '../helpers/paging.js';
import { sleep } from '../helpers/wait.js';

interface Assignment {
  assignment_id: string;
  client_id: string;
  domain_id: string;
  service_id: string | null;
  scope: 'domain' | 'service';
  key: string;
  model_id: string;
  model_version: string;
  status: 'active' | 'archived';
  config: Record<string, unknown>;
  metadata: Record<string, unknown>;
  created_at: string;
  archived_at: string | null;
}

interface Service {
  service_id: string;
  status: string;
  provided_features: Record<string, unknown>;
  resolved_features: Record<string, unknown> | null;
  updated_at: string;
}

interface BlockingService {
  service_id: string;
  problems: FeatureProblem[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Version 1.0.0: a route is required, capacity defaults to 60. */
const CONTRACT_V1 = [
  { name: 'route', type: 'string', required: true },
  { name: 'capacity', type: 'integer', default: 60 },
];

/** Version 2.0.0 adds two required features, so services set up for 1.0.0 fail it. */
const CONTRACT_V2 = [
  { name: 'route', type: 'string', required: true },
  { name: 'capacity', type: 'integer', default: 60 },
  { name: 'mode', type: 'enum', values: ['bus', 'tram'], required: true },
  { name: 'zone', type: 'integer', required: true },
];

/** The blocking_services of a 422, sorted by service id. */
function blockingServices(response: ApiResponse): BlockingService[] {
  assertStatus(response, 422);
  errorMessage(response);
  const blocking = (response.body as { blocking_services?: BlockingService[] }).blocking_services;
  assert.ok(Array.isArray(blocking), `blocking_services: ${JSON.stringify(response.body)}`);
  for (const service of blocking) {
    assert.ok(service.problems.length > 0, `${service.service_id} lists its problems`);
    for (const problem of service.problems) assert.notEqual(problem.message, '');
  }
  return [...blocking].sort((a, b) => a.service_id.localeCompare(b.service_id));
}

const problemFeatures = (service: BlockingService | undefined) =>
  (service?.problems ?? []).map((problem) => problem.feature).sort();

/** A model with versions 1.0.0 (CONTRACT_V1) and 2.0.0 (CONTRACT_V2). */
async function createModel(s: TestServer) {
  const modelId = uniqueId('model');
  assertStatus(await s.put(`/v2/models/${modelId}`, {}), 201);
  assertStatus(await s.put(`/v2/models/${modelId}/versions/1.0.0`, { features: CONTRACT_V1 }), 201);
  assertStatus(await s.put(`/v2/models/${modelId}/versions/2.0.0`, { features: CONTRACT_V2 }), 201);
  return modelId;
}

/** A fresh client with one domain `dom` and a model; returns the paths tests need. */
async function setup(s: TestServer, prefix: string) {
  const clientId = uniqueId(prefix);
  const domainId = 'dom';
  assertStatus(await s.put(`/v2/clients/${clientId}`), 201);
  const domain = `/v2/clients/${clientId}/domains/${domainId}`;
  assertStatus(await s.put(domain), 201);
  const modelId = await createModel(s);
  return {
    clientId,
    domainId,
    modelId,
    domain,
    /** The domain-scope assignments collection. */
    assignments: `${domain}/assignments`,
    /** A service-scope assignments collection. */
    serviceAssignments: (serviceId: string) => `${domain}/service/${serviceId}/assignments`,
    service: (serviceId: string) => `${domain}/services/${serviceId}`,
  };
}

async function putService(s: TestServer, path: string, provided: Record<string, unknown>) {
  return expectBody<Service>(await s.put(path, { provided_features: provided }), 201);
}

async function getService(s: TestServer, path: string) {
  return expectBody<Service>(await s.get(path), 200);
}

async function revisions(s: TestServer, keyPath: string) {
  return expectBody<Page<Assignment>>(await s.get(`${keyPath}/revisions?limit=500`), 200).items;
}

describeOnEachBackend('assignments', (server) => {
  describe('revisions', () => {
    it('PUT creates a revision (201), the same again is a no-op (200), a new version replaces it', async () => {
      const s = server();
      const { clientId, domainId, modelId, assignments } = await setup(s, 'create');
      const url = `${assignments}/ranking`;

      const first = expectBody<Assignment>(
        await s.put(url, { model_id: modelId, model_version: '1.0.0' }),
        201,
      );
      assert.match(first.assignment_id, UUID);
      assert.equal(first.client_id, clientId);
      assert.equal(first.domain_id, domainId);
      assert.equal(first.service_id, null);
      assert.equal(first.scope, 'domain');
      assert.equal(first.key, 'ranking');
      assert.equal(first.model_id, modelId);
      assert.equal(first.model_version, '1.0.0');
      assert.equal(first.status, 'active');
      assert.deepEqual(first.config, {});
      assert.deepEqual(first.metadata, {});
      assertIso(first.created_at, 'created_at');
      assert.equal(first.archived_at, null);

      const again = expectBody<Assignment>(
        await s.put(url, {
          model_id: modelId,
          model_version: '1.0.0',
          status: 'active',
          config: {},
        }),
        200,
      );
      assert.deepEqual(again, first);

      const second = expectBody<Assignment>(
        await s.put(url, { model_id: modelId, model_version: '2.0.0' }),
        200,
      );
      assert.notEqual(second.assignment_id, first.assignment_id);
      assert.equal(second.model_version, '2.0.0');
      assert.equal(second.status, 'active');
      assert.equal(second.archived_at, null);

      const history = await revisions(s, url);
      assert.deepEqual(
        history.map((revision) => [revision.assignment_id, revision.status]),
        [
          [second.assignment_id, 'active'],
          [first.assignment_id, 'archived'],
        ],
      );
      const archived = history[1]!;
      assertIso(archived.archived_at, 'archived_at');
      assert.ok(Date.parse(archived.archived_at!) >= Date.parse(first.created_at));
      assert.equal(archived.model_version, '1.0.0');

      assert.deepEqual(expectBody<Assignment>(await s.get(url), 200), second);
    });

    it('a config change makes a new revision; a metadata change alone does not', async () => {
      const s = server();
      const { modelId, assignments } = await setup(s, 'config');
      const url = `${assignments}/ranking`;
      const body = { model_id: modelId, model_version: '1.0.0' };

      const first = expectBody<Assignment>(
        await s.put(url, {
          ...body,
          config: { threshold: 0.5, tags: ['a'] },
          metadata: { by: 'x' },
        }),
        201,
      );
      assert.deepEqual(first.config, { threshold: 0.5, tags: ['a'] });
      assert.deepEqual(first.metadata, { by: 'x' });

      // The same config in another key order, with other metadata: nothing changes.
      const metadataOnly = expectBody<Assignment>(
        await s.put(url, {
          ...body,
          config: { tags: ['a'], threshold: 0.5 },
          metadata: { by: 'y' },
        }),
        200,
      );
      assert.equal(metadataOnly.assignment_id, first.assignment_id);
      assert.deepEqual(metadataOnly.metadata, { by: 'x' }, 'metadata alone is not a revision');

      const changed = expectBody<Assignment>(
        await s.put(url, {
          ...body,
          config: { threshold: 0.7, tags: ['a'] },
          metadata: { by: 'z' },
        }),
        200,
      );
      assert.notEqual(changed.assignment_id, first.assignment_id);
      assert.deepEqual(changed.config, { threshold: 0.7, tags: ['a'] });
      assert.deepEqual(changed.metadata, { by: 'z' }, 'a new revision stores its metadata');

      // Omitting config means {}, which differs from the stored config.
      const cleared = expectBody<Assignment>(await s.put(url, body), 200);
      assert.notEqual(cleared.assignment_id, changed.assignment_id);
      assert.deepEqual(cleared.config, {});
      assert.equal((await revisions(s, url)).length, 3);
    });

    it('status archived retires the key; revisions list newest first, paged; re-archiving is a no-op', async () => {
      const s = server();
      const { modelId, assignments } = await setup(s, 'archive');
      const url = `${assignments}/ranking`;
      const body = { model_id: modelId, model_version: '1.0.0' };

      const v1 = expectBody<Assignment>(await s.put(url, body), 201);
      await sleep(2);
      const v2 = expectBody<Assignment>(await s.put(url, { ...body, model_version: '2.0.0' }), 200);
      await sleep(2);
      const retired = expectBody<Assignment>(
        await s.put(url, { ...body, model_version: '2.0.0', status: 'archived' }),
        200,
      );
      assert.equal(retired.status, 'archived');
      assertIso(retired.archived_at, 'archived_at');
      assert.notEqual(retired.assignment_id, v2.assignment_id);

      const current = expectBody<Assignment>(await s.get(url), 200);
      assert.deepEqual(current, retired);

      const again = expectBody<Assignment>(
        await s.put(url, { ...body, model_version: '2.0.0', status: 'archived' }),
        200,
      );
      assert.equal(again.assignment_id, retired.assignment_id, 'archiving twice changes nothing');

      const pages = await allPageItems<Assignment>(s, `${url}/revisions`, { limit: 1 });
      assert.deepEqual(
        pages.map((page) => page.map((revision) => revision.assignment_id)),
        [[retired.assignment_id], [v2.assignment_id], [v1.assignment_id]],
      );
      assert.ok(pages.flat().every((revision) => revision.status === 'archived'));
      assert.ok(pages.flat().every((revision) => revision.archived_at !== null));

      const two = expectBody<Page<Assignment>>(await s.get(`${url}/revisions?limit=2`), 200);
      assert.equal(two.items.length, 2);
      assert.equal(typeof two.next_cursor, 'string');
    });

    it('re-activating a retired key creates a new active revision: 201', async () => {
      const s = server();
      const { modelId, assignments } = await setup(s, 'reactivate');
      const url = `${assignments}/ranking`;
      const body = { model_id: modelId, model_version: '1.0.0' };
      const first = expectBody<Assignment>(await s.put(url, body), 201);
      assertStatus(await s.put(url, { ...body, status: 'archived' }), 200);

      const back = expectBody<Assignment>(await s.put(url, body), 201);
      assert.equal(back.status, 'active');
      assert.notEqual(back.assignment_id, first.assignment_id);
      const history = await revisions(s, url);
      assert.deepEqual(
        history.map((revision) => revision.status),
        ['active', 'archived', 'archived'],
      );
      assert.equal(history.filter((revision) => revision.status === 'active').length, 1);
    });

    it('archiving a key that never existed records a retired revision: 201', async () => {
      const s = server();
      const { modelId, assignments } = await setup(s, 'retired-new');
      const url = `${assignments}/ranking`;
      const retired = expectBody<Assignment>(
        await s.put(url, { model_id: modelId, model_version: '1.0.0', status: 'archived' }),
        201,
      );
      assert.equal(retired.status, 'archived');
      assertIso(retired.archived_at, 'archived_at');
      assert.deepEqual(expectBody<Assignment>(await s.get(url), 200), retired);
    });

    it('POST takes the key in the body and upserts like PUT', async () => {
      const s = server();
      const { modelId, assignments } = await setup(s, 'post');
      const body = { key: 'ranking', model_id: modelId, model_version: '1.0.0' };

      const created = expectBody<Assignment>(await s.post(assignments, body), 201);
      assert.equal(created.key, 'ranking');
      const again = expectBody<Assignment>(await s.post(assignments, body), 200);
      assert.equal(again.assignment_id, created.assignment_id);
      const replaced = expectBody<Assignment>(
        await s.post(assignments, { ...body, model_version: '2.0.0' }),
        200,
      );
      assert.notEqual(replaced.assignment_id, created.assignment_id);
      assert.deepEqual(
        expectBody<Assignment>(await s.get(`${assignments}/ranking`), 200),
        replaced,
      );

      const { key: _key, ...withoutKey } = body;
      assertError(await s.post(assignments, withoutKey), 400, 'key');
      assertError(await s.post(assignments, { ...body, key: 'bad key' }), 400, 'key');
    });
  });

  describe('malformed requests', () => {
    it('PUT with key in the body is a 400 and stores nothing', async () => {
      const s = server();
      const { modelId, assignments } = await setup(s, 'putkey');
      const url = `${assignments}/ranking`;
      const response = await s.put(url, {
        key: 'ranking',
        model_id: modelId,
        model_version: '1.0.0',
      });
      assertError(response, 400, 'key');
      assertError(await s.get(url), 404);
    });

    it('malformed bodies and paths are a 400', async () => {
      const s = server();
      const { modelId, assignments } = await setup(s, 'malformed');
      const url = `${assignments}/ranking`;
      const body = { model_id: modelId, model_version: '1.0.0' };
      assertError(await s.put(url, { model_id: modelId }), 400, 'model_version');
      assertError(await s.put(url, { ...body, status: 'retired' }), 400, 'status');
      assertError(await s.put(url, { ...body, config: [1] }), 400, 'config');
      assertError(await s.put(url, { ...body, metadata: 'x' }), 400, 'metadata');
      assertError(await s.put(url, { ...body, colour: 'red' }), 400, 'colour');
      assertError(await s.put(`${assignments}/bad%20key`, body), 400, 'key');
      assertError(await s.put(url, { ...body, model_version: 'a/b' }), 400, 'model_version');
      assertError(await s.get(url), 404);
      assertError(await s.get(`${assignments}?status=retired`), 400, 'status');
      assertError(await s.get(`${url}/revisions?cursor=garbage`), 400, 'cursor');
      const notUuid = base64urlJson(['not-a-uuid']);
      assertError(await s.get(`${url}/revisions?cursor=${notUuid}`), 400, 'cursor');
    });
  });

  describe('existence and permission', () => {
    it('an unknown model or version is a 422 naming it, and stores nothing', async () => {
      const s = server();
      const { modelId, assignments } = await setup(s, 'unknown-model');
      const url = `${assignments}/ranking`;
      const ghost = uniqueId('ghost-model');
      assertError(await s.put(url, { model_id: ghost, model_version: '1.0.0' }), 422, `"${ghost}"`);
      assertError(await s.put(url, { model_id: modelId, model_version: '9.9.9' }), 422, '"9.9.9"');
      assertError(await s.get(url), 404);
    });

    it("a token whose models claim lacks the body's model is a 403; with it, the upsert works", async () => {
      const s = server();
      const { clientId, modelId, assignments } = await setup(s, 'claim');
      const url = `${assignments}/ranking`;
      const body = { model_id: modelId, model_version: '1.0.0' };

      const other = await s.token(['assignments:write', 'read'], { models: ['some-other-model'] });
      assertError(await s.put(url, body, { token: other }), 403, `"${modelId}"`);
      assertError(await s.post(assignments, { ...body, key: 'ranking' }, { token: other }), 403);
      assertError(await s.get(url), 404);

      const allowed = await s.token(['assignments:write'], {
        clients: [clientId],
        models: [modelId],
      });
      assertStatus(await s.put(url, body, { token: allowed }), 201);
      assertError(await s.get(url, { token: allowed }), 403, '"read"');
    });

    it('an unknown client, domain or service is a 404 naming it', async () => {
      const s = server();
      const { clientId, modelId, domain, serviceAssignments } = await setup(s, 'missing');
      const body = { model_id: modelId, model_version: '1.0.0' };
      const ghost = uniqueId('ghost');

      for (const path of [
        `/v2/clients/${ghost}/domains/dom/assignments`,
        `/v2/clients/${ghost}/domains/dom/service/s1/assignments`,
      ]) {
        assertError(await s.put(`${path}/ranking`, body), 404, `client "${ghost}"`);
        assertError(await s.get(path), 404, `client "${ghost}"`);
      }
      const noDomain = `/v2/clients/${clientId}/domains/nowhere`;
      assertError(await s.put(`${noDomain}/assignments/ranking`, body), 404, 'domain "nowhere"');
      assertError(await s.post(`${noDomain}/assignments`, { ...body, key: 'k' }), 404, '"nowhere"');
      assertError(await s.get(`${noDomain}/assignments/ranking`), 404, 'domain "nowhere"');
      assertError(await s.get(`${noDomain}/service/s1/assignments`), 404, 'domain "nowhere"');

      const noService = serviceAssignments('nobody');
      assertError(await s.put(`${noService}/ranking`, body), 404, 'service "nobody"');
      assertError(await s.post(noService, { ...body, key: 'ranking' }), 404, 'service "nobody"');
      assertError(await s.get(noService), 404, 'service "nobody"');
      assertError(await s.get(`${noService}/ranking`), 404, 'service "nobody"');
      assertError(await s.get(`${noService}/ranking/revisions`), 404, 'service "nobody"');

      assertStatus(await s.put(`${domain}/services/s1`), 201);
      assertError(await s.get(`${serviceAssignments('s1')}/never`), 404, 'assignment "never"');
      assertError(await s.get(`${domain}/assignments/never`), 404, 'assignment "never"');
      assertError(await s.get(`${domain}/assignments/never/revisions`), 404, '"never"');
    });
  });

  describe('service scope', () => {
    it('a service-scope PUT (the seed route) checks the service against the contract', async () => {
      const s = server();
      const { clientId, domainId, modelId, service, serviceAssignments } = await setup(s, 'svc');
      await putService(s, service('s1'), { route: 'r1' });
      const url = `${serviceAssignments('s1')}/default`;

      const created = expectBody<Assignment>(
        await s.put(url, { model_id: modelId, model_version: '1.0.0', config: { k: 1 } }),
        201,
      );
      assert.equal(created.scope, 'service');
      assert.equal(created.service_id, 's1');
      assert.equal(created.client_id, clientId);
      assert.equal(created.domain_id, domainId);
      assert.deepEqual(created.config, { k: 1 });
      assert.deepEqual(expectBody<Assignment>(await s.get(url), 200), created);
      // A service-scope revision leaves the service's stored features alone.
      assert.equal((await getService(s, service('s1'))).resolved_features, null);

      const blocked = await s.put(url, { model_id: modelId, model_version: '2.0.0' });
      const message = assertError(blocked, 422, '"s1"');
      assert.match(message, /mode/);
      const blocking = blockingServices(blocked);
      assert.deepEqual(
        blocking.map((entry) => entry.service_id),
        ['s1'],
      );
      assert.deepEqual(problemFeatures(blocking[0]), ['mode', 'zone']);
      assert.deepEqual(expectBody<Assignment>(await s.get(url), 200), created, 'nothing changed');

      // Retiring does not need the service to fit.
      const retired = expectBody<Assignment>(
        await s.put(url, { model_id: modelId, model_version: '2.0.0', status: 'archived' }),
        200,
      );
      assert.equal(retired.status, 'archived');
    });

    it('service and domain scopes keep separate keys', async () => {
      const s = server();
      const { modelId, service, assignments, serviceAssignments } = await setup(s, 'scopes');
      await putService(s, service('s1'), { route: 'r1' });
      await putService(s, service('s2'), { route: 'r2' });
      const body = { model_id: modelId, model_version: '1.0.0' };
      const domainRevision = expectBody<Assignment>(await s.put(`${assignments}/k`, body), 201);
      const s1Revision = expectBody<Assignment>(
        await s.post(serviceAssignments('s1'), { ...body, key: 'k' }),
        201,
      );
      assertStatus(await s.put(`${serviceAssignments('s2')}/k`, body), 201);

      const domainList = expectBody<Page<Assignment>>(await s.get(assignments), 200);
      assert.deepEqual(
        domainList.items.map((item) => item.assignment_id),
        [domainRevision.assignment_id],
      );
      const s1List = expectBody<Page<Assignment>>(await s.get(serviceAssignments('s1')), 200);
      assert.deepEqual(
        s1List.items.map((item) => item.assignment_id),
        [s1Revision.assignment_id],
      );
      assert.equal((await revisions(s, `${serviceAssignments('s1')}/k`)).length, 1);
    });

    it('a service-scope upsert on a departed service is a 422; its revisions stay readable', async () => {
      const s = server();
      const { modelId, service, serviceAssignments } = await setup(s, 'departed');
      await putService(s, service('s1'), { route: 'r1' });
      const url = `${serviceAssignments('s1')}/default`;
      const body = { model_id: modelId, model_version: '1.0.0' };
      const created = expectBody<Assignment>(await s.put(url, body), 201);
      assertStatus(await s.post(`${service('s1')}/depart`), 200);

      assertError(await s.put(url, { ...body, model_version: '2.0.0' }), 422, '"s1"', 'departed');
      assertError(
        await s.post(serviceAssignments('s1'), { ...body, key: 'other' }),
        422,
        'departed',
      );
      assert.deepEqual(expectBody<Assignment>(await s.get(url), 200), created);
      assert.equal((await revisions(s, url)).length, 1);
    });
  });

  describe('listing', () => {
    it('GET .../assignments lists the current revision of each key, by key, paged and filtered', async () => {
      const s = server();
      const { modelId, assignments } = await setup(s, 'list');
      const body = { model_id: modelId, model_version: '1.0.0' };
      for (const key of ['k3', 'k1', 'k4', 'k2'])
        assertStatus(await s.put(`${assignments}/${key}`, body), 201);
      const k2 = expectBody<Assignment>(
        await s.put(`${assignments}/k2`, { ...body, model_version: '2.0.0' }),
        200,
      );
      const k4 = expectBody<Assignment>(
        await s.put(`${assignments}/k4`, { ...body, status: 'archived' }),
        200,
      );

      const pages = await allPageItems<Assignment>(s, assignments, { limit: 3 });
      assert.deepEqual(
        pages.map((page) => page.map((item) => item.key)),
        [['k1', 'k2', 'k3'], ['k4']],
      );
      const items = pages.flat();
      assert.deepEqual(items[1], k2, 'k2 shows its current revision');
      assert.deepEqual(items[3], k4, 'k4 shows its retired revision');

      const active = expectBody<Page<Assignment>>(await s.get(`${assignments}?status=active`), 200);
      assert.deepEqual(
        active.items.map((item) => item.key),
        ['k1', 'k2', 'k3'],
      );
      const archived = expectBody<Page<Assignment>>(
        await s.get(`${assignments}?status=archived`),
        200,
      );
      assert.deepEqual(
        archived.items.map((item) => [item.key, item.assignment_id]),
        [['k4', k4.assignment_id]],
      );
    });
  });

  describe('the domain default', () => {
    it('the domain default resolves every non-departed service and skips departed ones', async () => {
      const s = server();
      const { modelId, service, assignments } = await setup(s, 'default');
      await putService(s, service('a'), { route: 'ra', extra: true });
      await putService(s, service('b'), { route: 'rb', capacity: 80 });
      await putService(s, service('gone'), { capacity: 'not an integer' });
      assertStatus(await s.post(`${service('gone')}/depart`), 200);
      const goneBefore = await getService(s, service('gone'));

      const created = expectBody<Assignment>(
        await s.put(`${assignments}/default`, { model_id: modelId, model_version: '1.0.0' }),
        201,
      );
      assert.equal(created.key, 'default');
      assert.equal(created.scope, 'domain');

      assert.deepEqual((await getService(s, service('a'))).resolved_features, {
        route: 'ra',
        capacity: 60,
      });
      assert.deepEqual((await getService(s, service('b'))).resolved_features, {
        route: 'rb',
        capacity: 80,
      });
      assert.deepEqual(await getService(s, service('gone')), goneBefore, 'departed: untouched');

      // A service PUT now resolves against the default (and is refused when it does not fit).
      const c = await putService(s, service('c'), { route: 'rc' });
      assert.deepEqual(c.resolved_features, { route: 'rc', capacity: 60 });
      assertError(await s.put(service('d'), { provided_features: { capacity: 1 } }), 422, 'route');
    });

    it('a default that any service fails is a 422 listing them all, and writes nothing', async () => {
      const s = server();
      const { modelId, service, assignments } = await setup(s, 'blocked');
      await putService(s, service('a'), { route: 'ra' });
      await putService(s, service('b'), { route: 'rb' });
      await putService(s, service('c'), { route: 'rc', capacity: 30 });
      const url = `${assignments}/default`;
      const v1 = expectBody<Assignment>(
        await s.put(url, { model_id: modelId, model_version: '1.0.0' }),
        201,
      );
      const before = await Promise.all(['a', 'b', 'c'].map((id) => getService(s, service(id))));

      // a gets a valid patch; b and c lack mode and zone, and c's patch breaks route too.
      const response = await s.put(url, {
        model_id: modelId,
        model_version: '2.0.0',
        service_updates: [
          { service_id: 'a', static_features: { mode: 'tram', zone: 3 } },
          { service_id: 'c', static_features: { route: null } },
        ],
      });
      const message = assertError(response, 422, '"b"', '"c"', '2.0.0');
      assert.doesNotMatch(message, /"a"/);
      const blocking = blockingServices(response);
      assert.deepEqual(
        blocking.map((entry) => entry.service_id),
        ['b', 'c'],
      );
      assert.deepEqual(problemFeatures(blocking[0]), ['mode', 'zone']);
      assert.deepEqual(problemFeatures(blocking[1]), ['mode', 'route', 'zone']);

      assert.deepEqual(expectBody<Assignment>(await s.get(url), 200), v1, 'v1 still active');
      assert.deepEqual(
        (await revisions(s, url)).map((revision) => revision.assignment_id),
        [v1.assignment_id],
        'no new revision',
      );
      const after = await Promise.all(['a', 'b', 'c'].map((id) => getService(s, service(id))));
      assert.deepEqual(after, before, 'no service changed, not even a, whose patch was valid');
    });

    it('retiring the default sets every service resolved_features to null', async () => {
      const s = server();
      const { modelId, service, assignments } = await setup(s, 'retire');
      await putService(s, service('a'), { route: 'ra' });
      await putService(s, service('b'), { route: 'rb' });
      const url = `${assignments}/default`;
      const body = { model_id: modelId, model_version: '1.0.0' };
      const active = expectBody<Assignment>(await s.put(url, body), 201);
      assert.notEqual((await getService(s, service('a'))).resolved_features, null);

      const retired = expectBody<Assignment>(
        await s.put(url, { ...body, status: 'archived' }),
        200,
      );
      assert.equal(retired.status, 'archived');
      for (const id of ['a', 'b']) {
        const svc = await getService(s, service(id));
        assert.equal(svc.resolved_features, null, `${id} is no longer governed`);
        assert.deepEqual(svc.provided_features, { route: `r${id}` }, `${id} keeps provided`);
      }

      // With no default, services are no longer checked; the archived revisions stay readable.
      const free = await putService(s, service('c'), { capacity: 'anything' });
      assert.equal(free.resolved_features, null);
      const history = await revisions(s, url);
      assert.deepEqual(
        history.map((revision) => [revision.assignment_id, revision.status]),
        [
          [retired.assignment_id, 'archived'],
          [active.assignment_id, 'archived'],
        ],
      );
      assert.equal(history[1]?.model_version, '1.0.0');
    });

    it('a service PUT against a default still refuses features that do not fit', async () => {
      const s = server();
      const { modelId, service, assignments } = await setup(s, 'svc-after');
      await putService(s, service('a'), { route: 'ra' });
      assertStatus(
        await s.put(`${assignments}/default`, { model_id: modelId, model_version: '1.0.0' }),
        201,
      );
      assertError(await s.put(service('a'), { provided_features: { capacity: 1 } }), 422, 'route');
      const updated = expectBody<Service>(
        await s.put(service('a'), { provided_features: { route: 'ra2', capacity: 7 } }),
        200,
      );
      assert.deepEqual(updated.resolved_features, { route: 'ra2', capacity: 7 });
    });
  });

  describe('service_updates', () => {
    it('service_updates merge into provided_features (null removes a key) before resolving', async () => {
      const s = server();
      const { modelId, service, assignments } = await setup(s, 'updates');
      await putService(s, service('a'), { route: 'ra', capacity: 10, note: 'keep me' });
      await putService(s, service('b'), { route: 'rb', capacity: 20 });
      const url = `${assignments}/default`;
      const v1 = expectBody<Assignment>(
        await s.put(url, { model_id: modelId, model_version: '1.0.0' }),
        201,
      );

      const v2 = expectBody<Assignment>(
        await s.put(url, {
          model_id: modelId,
          model_version: '2.0.0',
          service_updates: [
            { service_id: 'a', static_features: { mode: 'tram', zone: 1, capacity: null } },
            { service_id: 'b', static_features: { mode: 'bus', zone: 2, route: 'rb2' } },
          ],
        }),
        200,
      );
      assert.notEqual(v2.assignment_id, v1.assignment_id);

      const a = await getService(s, service('a'));
      assert.deepEqual(a.provided_features, {
        route: 'ra',
        note: 'keep me',
        mode: 'tram',
        zone: 1,
      });
      assert.deepEqual(a.resolved_features, { route: 'ra', capacity: 60, mode: 'tram', zone: 1 });
      const b = await getService(s, service('b'));
      assert.deepEqual(b.provided_features, { route: 'rb2', capacity: 20, mode: 'bus', zone: 2 });
      assert.deepEqual(b.resolved_features, { route: 'rb2', capacity: 20, mode: 'bus', zone: 2 });
    });

    it('service_updates apply even when the default revision itself is unchanged', async () => {
      const s = server();
      const { modelId, service, assignments } = await setup(s, 'updates-same');
      await putService(s, service('a'), { route: 'ra' });
      const url = `${assignments}/default`;
      const body = { model_id: modelId, model_version: '1.0.0' };
      const first = expectBody<Assignment>(await s.put(url, body), 201);

      const same = expectBody<Assignment>(
        await s.put(url, {
          ...body,
          service_updates: [{ service_id: 'a', static_features: { capacity: 5 } }],
        }),
        200,
      );
      assert.equal(same.assignment_id, first.assignment_id);
      const a = await getService(s, service('a'));
      assert.deepEqual(a.provided_features, { route: 'ra', capacity: 5 });
      assert.deepEqual(a.resolved_features, { route: 'ra', capacity: 5 });
      assert.equal((await revisions(s, url)).length, 1);
    });

    it('service_updates naming an unknown or departed service is a 422 naming it; nothing written', async () => {
      const s = server();
      const { modelId, service, assignments } = await setup(s, 'updates422');
      await putService(s, service('a'), { route: 'ra' });
      await putService(s, service('gone'), { route: 'rg' });
      assertStatus(await s.post(`${service('gone')}/depart`), 200);
      const url = `${assignments}/default`;
      const patchA = { service_id: 'a', static_features: { capacity: 1 } };

      const unknown = await s.put(url, {
        model_id: modelId,
        model_version: '1.0.0',
        service_updates: [patchA, { service_id: 'nobody', static_features: { route: 'x' } }],
      });
      assertError(unknown, 422, '"nobody"');
      const departed = await s.put(url, {
        model_id: modelId,
        model_version: '1.0.0',
        service_updates: [patchA, { service_id: 'gone', static_features: { route: 'x' } }],
      });
      assertError(departed, 422, '"gone"', 'departed');

      assertError(await s.get(url), 404);
      const a = await getService(s, service('a'));
      assert.deepEqual(a.provided_features, { route: 'ra' });
      assert.equal(a.resolved_features, null);
      assert.deepEqual((await getService(s, service('gone'))).provided_features, { route: 'rg' });
    });

    it('service_updates naming a service twice is a 400', async () => {
      const s = server();
      const { modelId, service, assignments } = await setup(s, 'duplicate');
      await putService(s, service('a'), { route: 'ra' });
      const response = await s.put(`${assignments}/default`, {
        model_id: modelId,
        model_version: '1.0.0',
        service_updates: [
          { service_id: 'a', static_features: { capacity: 1 } },
          { service_id: 'a', static_features: { capacity: 2 } },
        ],
      });
      assertError(response, 400, '"a"');
      assertError(await s.get(`${assignments}/default`), 404);
      assert.deepEqual((await getService(s, service('a'))).provided_features, { route: 'ra' });
    });

    it('service_updates on any other upsert patch services under the domain default (seed 001)', async () => {
      const s = server();
      const { modelId, service, assignments, serviceAssignments } = await setup(s, 'updatesOther');
      await putService(s, service('s1'), { route: 'r1' });
      await putService(s, service('s2'), { route: 'r2' });
      const v1 = { model_id: modelId, model_version: '1.0.0' };

      // Without a domain default the patch is stored and nothing resolves.
      assertStatus(
        await s.put(`${assignments}/ranking`, {
          ...v1,
          service_updates: [{ service_id: 's2', static_features: { route: 'r2b' } }],
        }),
        201,
      );
      const s2 = await getService(s, service('s2'));
      assert.deepEqual(s2.provided_features, { route: 'r2b' });
      assert.equal(s2.resolved_features, null);

      // With one, patched services are resolved against it, and blocked when they fail it.
      assertStatus(await s.put(`${assignments}/default`, v1), 201);
      const scoped = expectBody<Assignment>(
        await s.put(`${serviceAssignments('s1')}/default`, {
          ...v1,
          service_updates: [{ service_id: 's2', static_features: { capacity: 7 } }],
        }),
        201,
      );
      assert.equal(scoped.service_id, 's1');
      assert.deepEqual((await getService(s, service('s2'))).resolved_features, {
        route: 'r2b',
        capacity: 7,
      });
      const blocked = await s.put(`${serviceAssignments('s1')}/other`, {
        ...v1,
        service_updates: [{ service_id: 's2', static_features: { route: null } }],
      });
      assertError(blocked, 422, '"s2"');
      assert.equal(blocked.body.blocking_services[0].service_id, 's2');
      assertError(await s.get(`${serviceAssignments('s1')}/other`), 404);
      assert.deepEqual((await getService(s, service('s2'))).provided_features, {
        route: 'r2b',
        capacity: 7,
      });

      // The scoped service is checked against the target version after its own patch.
      const v2 = { model_id: modelId, model_version: '2.0.0' };
      assertError(await s.put(`${serviceAssignments('s1')}/v2`, v2), 422, 'mode');
      assertStatus(
        await s.put(`${serviceAssignments('s1')}/v2`, {
          ...v2,
          service_updates: [{ service_id: 's1', static_features: { mode: 'bus', zone: 3 } }],
        }),
        201,
      );
    });
  });

  describe('concurrent upserts', () => {
    it('concurrent identical default upserts leave exactly one active revision', async () => {
      const s = server();
      const { modelId, service, assignments } = await setup(s, 'concurrent');
      await putService(s, service('a'), { route: 'ra' });
      const url = `${assignments}/default`;
      const body = { model_id: modelId, model_version: '1.0.0' };

      const responses = await Promise.all(Array.from({ length: 5 }, () => s.put(url, body)));
      assert.deepEqual(
        responses.map((response) => response.status).sort(),
        [200, 200, 200, 200, 201],
        JSON.stringify(responses.map((response): unknown => response.body)),
      );
      const ids = new Set(responses.map((response) => (response.body as Assignment).assignment_id));
      assert.equal(ids.size, 1, 'every answer is the same revision');
      const history = await revisions(s, url);
      assert.equal(history.length, 1);
      assert.equal(history[0]?.status, 'active');

      // Concurrent different versions: they take turns, and one revision ends up active.
      const mixed = await Promise.all(
        ['1.0.0', '1.0.0', '1.0.0'].map((version, index) =>
          s.put(url, { ...body, model_version: version, config: { turn: index } }),
        ),
      );
      for (const response of mixed) assert.ok([200, 201].includes(response.status));
      const after = await revisions(s, url);
      assert.equal(after.filter((revision) => revision.status === 'active').length, 1);
      assert.equal(after.length, 4);
    });

    it('concurrent upserts of any key, in either scope, take turns', async () => {
      const s = server();
      const { modelId, service, assignments, serviceAssignments } = await setup(s, 'turns');
      await putService(s, service('a'), { route: 'ra' });
      const body = { model_id: modelId, model_version: '1.0.0' };
      for (const url of [`${assignments}/ranking`, `${serviceAssignments('a')}/ranking`]) {
        const responses = await Promise.all(Array.from({ length: 5 }, () => s.put(url, body)));
        assert.deepEqual(
          responses.map((response) => response.status).sort(),
          [200, 200, 200, 200, 201],
          `${url}: ${JSON.stringify(responses.map((response): unknown => response.body))}`,
        );
        assert.equal((await revisions(s, url)).length, 1);
      }
    });

    it('service PUTs racing a default upsert never leave a service the default does not fit', async () => {
      const s = server();
      for (let round = 0; round < 8; round++) {
        const { modelId, service, assignments } = await setup(s, 'race');
        await putService(s, service('a'), { route: 'ra' });
        const url = `${assignments}/default`;
        assertStatus(await s.put(url, { model_id: modelId, model_version: '1.0.0' }), 201);

        // Fits 1.0.0 but not 2.0.0: whichever commits first, the other must refuse.
        const [upsert, late] = await Promise.all([
          s.put(url, {
            model_id: modelId,
            model_version: '2.0.0',
            service_updates: [{ service_id: 'a', static_features: { mode: 'bus', zone: 1 } }],
          }),
          s.put(service('late'), { provided_features: { route: 'rl' } }),
        ]);
        const current = expectBody<Assignment>(await s.get(url), 200);
        if (current.model_version === '2.0.0') {
          assertStatus(upsert, 200);
          assertError(late, 422, 'mode');
          assertError(await s.get(service('late')), 404);
        } else {
          assertStatus(late, 201);
          assert.deepEqual(problemFeatures(blockingServices(upsert)[0]), ['mode', 'zone']);
        }
      }
    });
  });
});
