import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe, it } from 'node:test';
import { findMatchingSubscriptions } from '../../src/repositories/subscriptions.repository.js';
import { describeOnEachBackend, type TestServer } from '../helpers/test-server.js';
import { assertStatus, expectBody, assertError, assertIso } from '../helpers/assertions.js';
import { base64urlJson } from '../helpers/encoding.js';
import { uniqueId } from '../helpers/fixtures.js';
import { allPageItems, type Page } from '../helpers/paging.js';
import { sleep } from '../helpers/wait.js';

interface Subscription {
  subscription_id: string;
  client_id: string;
  domain_id: string;
  event: string;
  source: { model_id: string; model_version: string | null; service_id: string | null };
  action: { assignment_key: string; service_id: string | null; job_type: string };
  input: Record<string, unknown>;
  status: string;
  created_by_job_id: string | null;
  created_at: string;
  updated_at: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface Tenant {
  clientId: string;
  domainId: string;
  /** `/v2/clients/{c}/domains/{d}/subscriptions` */
  subs: string;
  modelId: string;
}

/** A fresh client and domain, a model with versions 1.0.0 and 2.0.0, and services s1, s2. */
async function setUp(s: TestServer, prefix: string, domainId = 'south_australia'): Promise<Tenant> {
  const clientId = uniqueId(prefix);
  const modelId = uniqueId('model');
  assertStatus(await s.put(`/v2/clients/${clientId}`, { name: 'Adelaide Metro' }), 201);
  await addDomain(s, clientId, domainId);
  assertStatus(await s.put(`/v2/models/${modelId}`, { description: 'test model' }), 201);
  for (const version of ['1.0.0', '2.0.0']) {
    assertStatus(await s.put(`/v2/models/${modelId}/versions/${version}`, { features: [] }), 201);
  }
  return {
    clientId,
    domainId,
    modelId,
    subs: `/v2/clients/${clientId}/domains/${domainId}/subscriptions`,
  };
}

async function addDomain(s: TestServer, clientId: string, domainId: string) {
  const domain = `/v2/clients/${clientId}/domains/${domainId}`;
  assertStatus(await s.put(domain), 201);
  for (const serviceId of ['s1', 's2']) {
    assertStatus(await s.put(`${domain}/services/${serviceId}`, {}), 201);
  }
}

function body(modelId: string, extra: Record<string, unknown> = {}) {
  return {
    source: { model_id: modelId },
    action: { assignment_key: 'default', job_type: 'training' },
    ...extra,
  };
}

async function create(s: TestServer, t: Tenant, extra: Record<string, unknown> = {}) {
  return expectBody<Subscription>(await s.post(t.subs, body(t.modelId, extra)), 201);
}

const ids = (items: { subscription_id: string }[]) => items.map((item) => item.subscription_id);

describeOnEachBackend('subscriptions', (server) => {
  describe('creating and reading', () => {
    it('POST creates a subscription: 201 with the defaults filled in', async () => {
      const s = server();
      const t = await setUp(s, 'create');
      const before = Date.now();
      const created = expectBody<Subscription>(await s.post(t.subs, body(t.modelId)), 201);
      assert.match(created.subscription_id, UUID);
      assert.deepEqual(
        { ...created, subscription_id: 'id', created_at: 'at', updated_at: 'at' },
        {
          subscription_id: 'id',
          client_id: t.clientId,
          domain_id: t.domainId,
          event: 'inference_complete',
          source: { model_id: t.modelId, model_version: null, service_id: null },
          action: {
            assignment_key: 'default',
            service_id: null,
            job_type: 'training',
            priority: null,
          },
          input: {},
          status: 'active',
          debounce_s: 0,
          created_by_job_id: null,
          created_at: 'at',
          updated_at: 'at',
        },
      );
      assertIso(created.created_at, 'created_at');
      assertIso(created.updated_at, 'updated_at');
      assert.equal(created.updated_at, created.created_at);
      assert.ok(Math.abs(Date.parse(created.created_at) - before) < 60_000, 'created_at is now');
    });

    it('POST stores every field it is given', async () => {
      const s = server();
      const t = await setUp(s, 'full');
      const created = expectBody<Subscription>(
        await s.post(t.subs, {
          event: 'inference_complete',
          source: { model_id: t.modelId, model_version: '2.0.0', service_id: 's1' },
          action: {
            assignment_key: 'retrain',
            service_id: 's2',
            job_type: 'fine_tune_2',
            priority: -20,
          },
          input: { epochs: 3, nested: { list: [1, 'two', null] } },
          status: 'paused',
        }),
        201,
      );
      assert.deepEqual(created.source, {
        model_id: t.modelId,
        model_version: '2.0.0',
        service_id: 's1',
      });
      assert.deepEqual(created.action, {
        assignment_key: 'retrain',
        service_id: 's2',
        job_type: 'fine_tune_2',
        priority: -20,
      });
      assert.deepEqual(created.input, { epochs: 3, nested: { list: [1, 'two', null] } });
      assert.equal(created.status, 'paused');
    });

    it('GET /subscriptions/{id} answers the stored subscription', async () => {
      const s = server();
      const t = await setUp(s, 'getone');
      const created = await create(s, t, { input: { a: 1 } });
      const got = expectBody<Subscription>(
        await s.get(`${t.subs}/${created.subscription_id}`),
        200,
      );
      assert.deepEqual(got, created);
    });

    it('GET of an unknown subscription id is a 404 naming it', async () => {
      const s = server();
      const t = await setUp(s, 'getmissing');
      const id = crypto.randomUUID();
      assertError(await s.get(`${t.subs}/${id}`), 404, `"${id}"`);
    });
  });

  describe('listing', () => {
    it('GET /subscriptions pages oldest first and every subscription appears once', async () => {
      const s = server();
      const t = await setUp(s, 'paging');
      const created: Subscription[] = [];
      for (let i = 0; i < 5; i++) created.push(await create(s, t, { input: { i } }));

      const pages = await allPageItems<Subscription>(s, t.subs, { limit: 2 });
      assert.deepEqual(
        pages.map((page) => page.length),
        [2, 2, 1],
      );
      assert.deepEqual(ids(pages.flat()), ids(created));
      assert.deepEqual(pages.flat(), created);

      const whole = expectBody<Page<Subscription>>(await s.get(t.subs), 200);
      assert.equal(whole.next_cursor, null);
      assert.deepEqual(ids(whole.items), ids(created));
    });

    it('paging orders by created_at, then id, and keeps subscriptions apart within a millisecond', async () => {
      const s = server();
      const t = await setUp(s, 'order');
      const created = [
        await create(s, t),
        await create(s, t),
        await create(s, t),
        await create(s, t),
      ];
      const [a, b, c, d] = ids(created).sort() as [string, string, string, string];
      // d is the oldest; b and c tie and are ordered by id; a and b are apart by 100 µs, which a
      // millisecond cursor would see as one instant and page twice (or never).
      await s.db.query(
        `update subscriptions set created_at = case subscription_id
         when $1::uuid then timestamptz '2026-01-01T00:00:00.005100Z'
         when $2::uuid then timestamptz '2026-01-01T00:00:00.005200Z'
         when $3::uuid then timestamptz '2026-01-01T00:00:00.005200Z'
         else timestamptz '2026-01-01T00:00:00.001Z' end
       where client_id = $4`,
        [a, b, c, t.clientId],
      );
      for (const limit of [1, 2, 3]) {
        const pages = await allPageItems<Subscription>(s, t.subs, { limit });
        assert.deepEqual(ids(pages.flat()), [d, a, b, c], `limit ${limit}`);
      }
    });

    it('GET /subscriptions filters by status and by source model', async () => {
      const s = server();
      const t = await setUp(s, 'filter');
      const otherModel = uniqueId('model');
      assertStatus(await s.put(`/v2/models/${otherModel}`, {}), 201);
      const activeA = await create(s, t);
      const pausedA = await create(s, t, { status: 'paused' });
      const activeB = expectBody<Subscription>(await s.post(t.subs, body(otherModel)), 201);
      const pausedB = expectBody<Subscription>(
        await s.post(t.subs, body(otherModel, { status: 'paused' })),
        201,
      );

      const list = async (query: string) =>
        ids(expectBody<Page<Subscription>>(await s.get(`${t.subs}${query}`), 200).items);
      assert.deepEqual(await list('?status=active'), ids([activeA, activeB]));
      assert.deepEqual(await list('?status=paused'), ids([pausedA, pausedB]));
      assert.deepEqual(await list(`?model_id=${t.modelId}`), ids([activeA, pausedA]));
      assert.deepEqual(await list(`?model_id=${otherModel}&status=paused`), ids([pausedB]));
      assert.deepEqual(await list('?model_id=nobody'), []);
      const paged = await allPageItems<Subscription>(s, `${t.subs}?status=active`, { limit: 1 });
      assert.deepEqual(ids(paged.flat()), ids([activeA, activeB]));

      assertError(await s.get(`${t.subs}?status=deleted`), 400, 'status');
      assertError(await s.get(`${t.subs}?model_id=bad%20id`), 400, 'model_id');
    });

    it('GET /subscriptions lists only the domain in the path', async () => {
      const s = server();
      const t = await setUp(s, 'listdomain');
      await addDomain(s, t.clientId, 'victoria');
      const here = await create(s, t);
      const there = expectBody<Subscription>(
        await s.post(`/v2/clients/${t.clientId}/domains/victoria/subscriptions`, body(t.modelId)),
        201,
      );
      const list = expectBody<Page<Subscription>>(await s.get(t.subs), 200);
      assert.deepEqual(ids(list.items), [here.subscription_id]);
      const other = expectBody<Page<Subscription>>(
        await s.get(`/v2/clients/${t.clientId}/domains/victoria/subscriptions`),
        200,
      );
      assert.deepEqual(ids(other.items), [there.subscription_id]);
    });

    it('a cursor that does not decode to a sort key is a 400, never a 500', async () => {
      const s = server();
      const t = await setUp(s, 'cursor');
      await create(s, t);
      const forged = [
        'not-base64-json',
        base64urlJson(['only-one']),
        base64urlJson(['yesterday', crypto.randomUUID()]),
        base64urlJson(['2026-02-30T00:00:00.000Z', crypto.randomUUID()]),
        base64urlJson(['2026-13-01T00:00:00.000Z', crypto.randomUUID()]),
        base64urlJson(['2026-01-01 00:00:00', crypto.randomUUID()]),
        base64urlJson(['2026-01-01T00:00:00.000Z', 'not-a-uuid']),
        base64urlJson(['2026-01-01T00:00:00.000Z', crypto.randomUUID(), 'extra']),
      ];
      for (const cursor of forged) {
        assertError(await s.get(`${t.subs}?cursor=${cursor}`), 400, 'cursor');
      }
      const valid = base64urlJson(['2000-01-01T00:00:00.000Z', crypto.randomUUID()]);
      assert.equal(
        expectBody<Page<Subscription>>(await s.get(`${t.subs}?cursor=${valid}`), 200).items.length,
        1,
      );
    });
  });

  describe('pause, resume and delete', () => {
    it('pause and resume change the status, are idempotent, and move updated_at', async () => {
      const s = server();
      const t = await setUp(s, 'pause');
      const created = await create(s, t);
      const path = `${t.subs}/${created.subscription_id}`;

      await sleep(5);
      const paused = expectBody<Subscription>(await s.post(`${path}/pause`), 200);
      assert.equal(paused.status, 'paused');
      assert.equal(paused.created_at, created.created_at);
      assert.ok(Date.parse(paused.updated_at) > Date.parse(created.updated_at), 'updated_at moved');
      assert.deepEqual({ ...paused, status: 'active', updated_at: created.updated_at }, created);

      await sleep(5);
      assert.deepEqual(expectBody<Subscription>(await s.post(`${path}/pause`), 200), paused);
      assert.deepEqual(expectBody<Subscription>(await s.get(path), 200), paused);

      await sleep(5);
      const resumed = expectBody<Subscription>(await s.post(`${path}/resume`, {}), 200);
      assert.equal(resumed.status, 'active');
      assert.ok(Date.parse(resumed.updated_at) > Date.parse(paused.updated_at), 'updated_at moved');
      await sleep(5);
      assert.deepEqual(expectBody<Subscription>(await s.post(`${path}/resume`), 200), resumed);
      assert.deepEqual(expectBody<Subscription>(await s.get(path), 200), resumed);
    });

    it('DELETE answers 204 without a body; the subscription is gone', async () => {
      const s = server();
      const t = await setUp(s, 'delete');
      const kept = await create(s, t);
      const doomed = await create(s, t);
      const path = `${t.subs}/${doomed.subscription_id}`;

      const deleted = await s.call('DELETE', path);
      assertStatus(deleted, 204);
      assert.equal(deleted.body, undefined);

      assertError(await s.get(path), 404, doomed.subscription_id);
      assertError(await s.call('DELETE', path), 404, doomed.subscription_id);
      assertError(await s.post(`${path}/pause`), 404, doomed.subscription_id);
      assertError(await s.post(`${path}/resume`), 404, doomed.subscription_id);
      const list = expectBody<Page<Subscription>>(await s.get(t.subs), 200);
      assert.deepEqual(ids(list.items), [kept.subscription_id]);
    });
  });

  describe('malformed requests', () => {
    it('a subscription id that is not a UUID is a 400 on every route', async () => {
      const s = server();
      const t = await setUp(s, 'notuuid');
      const uuid = crypto.randomUUID();
      for (const id of ['abc', '123', `${uuid}0`, `urn:uuid:${uuid}`, uuid.replace(/-/g, '')]) {
        const path = `${t.subs}/${encodeURIComponent(id)}`;
        assertError(await s.get(path), 400, 'subscription_id');
        assertError(await s.call('DELETE', path), 400, 'subscription_id');
        assertError(await s.post(`${path}/pause`), 400, 'subscription_id');
        assertError(await s.post(`${path}/resume`), 400, 'subscription_id');
      }
    });

    it('POST refuses a malformed body with a 400 naming the field, and stores nothing', async () => {
      const s = server();
      const t = await setUp(s, 'badbody');
      const action = { assignment_key: 'default', job_type: 'training' };
      const source = { model_id: t.modelId };
      const cases: [unknown, string][] = [
        [{ event: 'training_complete', source, action }, 'event'],
        [{ source }, 'action'],
        [{ action }, 'source'],
        [{ source, action, statsu: 'paused' }, 'statsu'],
        [{ source: { ...source, version: '1.0.0' }, action }, 'version'],
        [{ source, action: { ...action, urgency: 1 } }, 'urgency'],
        [{ source, action: { ...action, priority: 101 } }, 'priority'],
        [{ source, action: { assignment_key: 'default' } }, 'job_type'],
        [{ source, action: { ...action, job_type: 'Training' } }, 'job_type'],
        [{ source, action: { ...action, job_type: '1st' } }, 'job_type'],
        [{ source, action: { ...action, assignment_key: 'bad key' } }, 'assignment_key'],
        [{ source: { model_id: 'bad/model' }, action }, 'model_id'],
        [{ source: { ...source, service_id: '' }, action }, 'service_id'],
        [{ source: { ...source, model_version: null }, action }, 'model_version'],
        [{ source, action, input: [1, 2] }, 'input'],
        [{ source, action, input: 'text' }, 'input'],
        [{ source, action, status: 'deleted' }, 'status'],
      ];
      for (const [payload, field] of cases) {
        assertError(await s.post(t.subs, payload), 400, field);
      }
      assertError(await s.post(t.subs), 400, 'source');
      const list = expectBody<Page<Subscription>>(await s.get(t.subs), 200);
      assert.deepEqual(list.items, []);
    });
  });

  describe('unknown tenants, models and services', () => {
    it('an unknown client or domain is a 404 naming it, on every route', async () => {
      const s = server();
      const t = await setUp(s, 'tenant404');
      const missingClient = uniqueId('nobody');
      const id = (await create(s, t)).subscription_id;
      const paths = [
        [`/v2/clients/${missingClient}/domains/${t.domainId}/subscriptions`, `"${missingClient}"`],
        [`/v2/clients/${t.clientId}/domains/nowhere/subscriptions`, '"nowhere"'],
      ] as const;
      for (const [subs, mention] of paths) {
        assertError(await s.post(subs, body(t.modelId)), 404, mention);
        assertError(await s.get(subs), 404, mention);
        assertError(await s.get(`${subs}/${id}`), 404, mention);
        assertError(await s.call('DELETE', `${subs}/${id}`), 404, mention);
        assertError(await s.post(`${subs}/${id}/pause`), 404, mention);
        assertError(await s.post(`${subs}/${id}/resume`), 404, mention);
      }
      assertError(
        await s.post(`/v2/clients/${missingClient}/domains/x/subscriptions`, body(t.modelId)),
        404,
        'client',
      );
      assertError(await s.post(paths[1][0], body(t.modelId)), 404, 'domain');
    });

    it('an unknown source model, version or service is a 422 naming it, and stores nothing', async () => {
      const s = server();
      const t = await setUp(s, 'semantic');
      // A service of another domain of the same client does not count.
      await s.put(`/v2/clients/${t.clientId}/domains/elsewhere`);
      assertStatus(await s.put(`/v2/clients/${t.clientId}/domains/elsewhere/services/s9`, {}), 201);
      const action = { assignment_key: 'default', job_type: 'training' };
      const missingModel = uniqueId('ghost');
      const cases: [unknown, string[]][] = [
        [{ source: { model_id: missingModel }, action }, [`"${missingModel}"`, 'not registered']],
        [
          { source: { model_id: missingModel, model_version: '1.0.0' }, action },
          [`"${missingModel}"`],
        ],
        [{ source: { model_id: t.modelId, model_version: '3.0.0' }, action }, ['"3.0.0"']],
        [{ source: { model_id: t.modelId, service_id: 's9' }, action }, ['source service', '"s9"']],
        [
          { source: { model_id: t.modelId }, action: { ...action, service_id: 's9' } },
          ['action service', '"s9"'],
        ],
        [
          {
            source: { model_id: t.modelId, model_version: '9', service_id: 'sx' },
            action: { ...action, service_id: 'sy' },
          },
          ['"9"', '"sx"', '"sy"'],
        ],
      ];
      for (const [payload, mentions] of cases) {
        assertError(await s.post(t.subs, payload), 422, ...mentions);
      }
      const list = expectBody<Page<Subscription>>(await s.get(t.subs), 200);
      assert.deepEqual(list.items, []);
    });
  });

  describe('callers', () => {
    it('a read token cannot write and a jobs:write token cannot read (403)', async () => {
      const s = server();
      const t = await setUp(s, 'scopes');
      const id = (await create(s, t)).subscription_id;
      const read = await s.token(['read']);
      const write = await s.token(['jobs:write']);

      assertError(await s.post(t.subs, body(t.modelId), { token: read }), 403, '"jobs:write"');
      assertError(await s.call('DELETE', `${t.subs}/${id}`, { token: read }), 403, '"jobs:write"');
      assertError(await s.post(`${t.subs}/${id}/pause`, {}, { token: read }), 403, '"jobs:write"');
      assertError(await s.post(`${t.subs}/${id}/resume`, {}, { token: read }), 403, '"jobs:write"');
      assertError(await s.get(t.subs, { token: write }), 403, '"read"');
      assertError(await s.get(`${t.subs}/${id}`, { token: write }), 403, '"read"');

      assertStatus(await s.post(t.subs, body(t.modelId), { token: write }), 201);
      assertStatus(await s.post(`${t.subs}/${id}/pause`, {}, { token: write }), 200);
      assertStatus(await s.get(`${t.subs}/${id}`, { token: read }), 200);
      assertStatus(await s.get(t.subs, { token: read }), 200);
      assertStatus(await s.call('DELETE', `${t.subs}/${id}`, { token: write }), 204);
    });

    it("another client's token is a 403 on every route", async () => {
      const s = server();
      const t = await setUp(s, 'otherclient');
      const id = (await create(s, t)).subscription_id;
      const token = await s.token(['admin'], { clients: ['someone-else'] });
      const mention = `"${t.clientId}"`;
      assertError(await s.post(t.subs, body(t.modelId), { token }), 403, mention);
      assertError(await s.get(t.subs, { token }), 403, mention);
      assertError(await s.get(`${t.subs}/${id}`, { token }), 403, mention);
      assertError(await s.call('DELETE', `${t.subs}/${id}`, { token }), 403, mention);
      assertError(await s.post(`${t.subs}/${id}/pause`, {}, { token }), 403, mention);
      assertError(await s.post(`${t.subs}/${id}/resume`, {}, { token }), 403, mention);
      assertStatus(await s.get(`${t.subs}/${id}`), 200);
    });

    it('a token whose models claim leaves out the source model is a 403', async () => {
      const s = server();
      const t = await setUp(s, 'models');
      const id = (await create(s, t)).subscription_id;
      const other = await s.token(['jobs:write', 'read'], {
        clients: [t.clientId],
        models: ['another-model'],
      });
      const mention = `"${t.modelId}"`;
      assertError(await s.post(t.subs, body(t.modelId), { token: other }), 403, mention);
      // Checked before the tenant path, so a missing domain does not hide the refusal.
      assertError(
        await s.post(`/v2/clients/${t.clientId}/domains/nowhere/subscriptions`, body(t.modelId), {
          token: other,
        }),
        403,
        mention,
      );
      assertError(await s.post(`${t.subs}/${id}/pause`, {}, { token: other }), 403, mention);
      assertError(await s.call('DELETE', `${t.subs}/${id}`, { token: other }), 403, mention);
      assert.equal(expectBody<Subscription>(await s.get(`${t.subs}/${id}`), 200).status, 'active');

      const allowed = await s.token(['jobs:write'], { models: [t.modelId] });
      assertStatus(await s.post(t.subs, body(t.modelId), { token: allowed }), 201);
      assertStatus(await s.post(`${t.subs}/${id}/pause`, {}, { token: allowed }), 200);
      assertStatus(await s.call('DELETE', `${t.subs}/${id}`, { token: allowed }), 204);
    });

    it("a subscription of client A is not reachable through client B's path", async () => {
      const s = server();
      const a = await setUp(s, 'tenant-a');
      const b = await setUp(s, 'tenant-b');
      const subscription = await create(s, a);
      const id = subscription.subscription_id;

      assertError(await s.get(`${b.subs}/${id}`), 404, id);
      assertError(await s.post(`${b.subs}/${id}/pause`), 404, id);
      assertError(await s.call('DELETE', `${b.subs}/${id}`), 404, id);
      assert.deepEqual(expectBody<Page<Subscription>>(await s.get(b.subs), 200).items, []);
      // Nothing done through B's path touched A's subscription.
      assert.deepEqual(expectBody<Subscription>(await s.get(`${a.subs}/${id}`), 200), subscription);
    });
  });

  describe('matching jobs to subscriptions', () => {
    it('findMatchingSubscriptions matches version and service by null or equality', async () => {
      const s = server();
      const t = await setUp(s, 'match');
      const source = (extra: Record<string, string>) => ({
        source: { model_id: t.modelId, ...extra },
      });
      const any = await create(s, t);
      const v1 = await create(s, t, source({ model_version: '1.0.0' }));
      const v2 = await create(s, t, source({ model_version: '2.0.0' }));
      const s1 = await create(s, t, source({ service_id: 's1' }));
      const s2 = await create(s, t, source({ service_id: 's2' }));
      const v1s1 = await create(s, t, source({ model_version: '1.0.0', service_id: 's1' }));

      const match = async (model_version: string, service_id: string | null) =>
        ids(
          await findMatchingSubscriptions(s.db, {
            client_id: t.clientId,
            domain_id: t.domainId,
            model_id: t.modelId,
            model_version,
            service_id,
          }),
        );
      assert.deepEqual(await match('1.0.0', 's1'), ids([any, v1, s1, v1s1]));
      assert.deepEqual(await match('2.0.0', 's2'), ids([any, v2, s2]));
      assert.deepEqual(await match('1.0.0', null), ids([any, v1]));
      assert.deepEqual(await match('3.0.0', 's3'), ids([any]));

      const [found] = await findMatchingSubscriptions(s.db, {
        client_id: t.clientId,
        domain_id: t.domainId,
        model_id: t.modelId,
        model_version: '2.0.0',
        service_id: null,
      });
      assert.deepEqual(found, any);
    });

    it('findMatchingSubscriptions leaves out paused subscriptions, other domains, clients and models', async () => {
      const s = server();
      const t = await setUp(s, 'exclude');
      await addDomain(s, t.clientId, 'victoria');
      const other = await setUp(s, 'exclude-other', t.domainId);
      const otherModel = uniqueId('model');
      assertStatus(await s.put(`/v2/models/${otherModel}`, {}), 201);

      const active = await create(s, t);
      const paused = await create(s, t, { status: 'paused' });
      await create(s, t, { status: 'paused' });
      assertStatus(await s.post(t.subs, body(otherModel)), 201);
      assertStatus(
        await s.post(`/v2/clients/${t.clientId}/domains/victoria/subscriptions`, body(t.modelId)),
        201,
      );
      assertStatus(await s.post(other.subs, body(t.modelId)), 201);

      const job = {
        client_id: t.clientId,
        domain_id: t.domainId,
        model_id: t.modelId,
        model_version: '1.0.0',
        service_id: 's1',
      };
      assert.deepEqual(ids(await findMatchingSubscriptions(s.db, job)), ids([active]));

      assertStatus(await s.post(`${t.subs}/${paused.subscription_id}/resume`), 200);
      assert.deepEqual(ids(await findMatchingSubscriptions(s.db, job)), ids([active, paused]));
      assertStatus(await s.post(`${t.subs}/${active.subscription_id}/pause`), 200);
      assert.deepEqual(ids(await findMatchingSubscriptions(s.db, job)), ids([paused]));
      assertStatus(await s.call('DELETE', `${t.subs}/${paused.subscription_id}`), 204);
      assert.deepEqual(await findMatchingSubscriptions(s.db, job), []);
    });

    it('findMatchingSubscriptions orders by created_at, then subscription id', async () => {
      const s = server();
      const t = await setUp(s, 'order');
      const first = await create(s, t);
      const second = await create(s, t);
      const third = await create(s, t);
      // The first becomes the newest; the other two tie and are ordered by id.
      await s.db.query(
        `update subscriptions
       set created_at = case when subscription_id = $1::uuid
         then timestamptz '2030-01-01T00:00:00Z' else timestamptz '2020-01-01T00:00:00Z' end
       where client_id = $2`,
        [first.subscription_id, t.clientId],
      );
      const tied = ids([second, third]).sort();
      const matched = await findMatchingSubscriptions(s.db, {
        client_id: t.clientId,
        domain_id: t.domainId,
        model_id: t.modelId,
        model_version: '1.0.0',
        service_id: null,
      });
      assert.deepEqual(ids(matched), [...tied, first.subscription_id]);
    });
  });
});
