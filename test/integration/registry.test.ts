import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe, it } from 'node:test';
import { issueToken } from '../../src/auth/token-issuer.js';
import { assertError, expectBody } from '../helpers/assertions.js';
import { base64urlJson } from '../helpers/encoding.js';
import { uniqueId, type FeatureProblem } from '../helpers/fixtures.js';
import { allPages, type Page } from '../helpers/paging.js';
import {
  TEST_JWT,
  describeOnEachBackend,
  errorMessage,
  type TestServer,
} from '../helpers/test-server.js';

/** A Standard Webhooks secret that follows the rule: whsec_ and the base64 of 24 bytes. */
const VALID_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

interface ModelView {
  model_id: string;
  description: string | null;
  created_at: string;
  updated_at: string;
}

interface FeatureView {
  name: string;
  type: string;
  required: boolean;
  default?: unknown;
  values?: string[];
  description?: string;
}

interface VersionView {
  model_id: string;
  model_version: string;
  features: FeatureView[];
  job_types: string[];
  handler: { type: string } & Record<string, unknown>;
  timeout_s: number;
  max_attempts: number;
  created_at: string;
  updated_at: string;
}

function isIsoTimestamp(value: unknown): boolean {
  return typeof value === 'string' && !Number.isNaN(Date.parse(value)) && value.includes('T');
}

async function createModel(s: TestServer, modelId: string, description?: string) {
  const body = description === undefined ? undefined : { description };
  return expectBody<ModelView>(await s.put(`/v2/models/${modelId}`, body), 201);
}

async function createVersion(s: TestServer, modelId: string, version: string, body: unknown) {
  return expectBody<VersionView>(
    await s.put(`/v2/models/${modelId}/versions/${version}`, body),
    201,
  );
}

const CONTRACT = [
  { name: 'route', type: 'string', required: true },
  { name: 'capacity', type: 'integer', default: 60 },
  { name: 'kind', type: 'enum', values: ['bus', 'tram'], description: 'vehicle kind' },
];

const NORMALISED_CONTRACT: FeatureView[] = [
  { name: 'route', type: 'string', required: true },
  { name: 'capacity', type: 'integer', required: false, default: 60 },
  {
    name: 'kind',
    type: 'enum',
    required: false,
    values: ['bus', 'tram'],
    description: 'vehicle kind',
  },
];

describeOnEachBackend('registry', (server) => {
  describe('models', () => {
    it('PUT /models/{m} creates a model with 201 and GET answers it', async () => {
      const s = server();
      const modelId = uniqueId('create');
      const created = await createModel(s, modelId, 'Predicts delay');
      assert.equal(created.model_id, modelId);
      assert.equal(created.description, 'Predicts delay');
      assert.ok(isIsoTimestamp(created.created_at), `created_at ${created.created_at}`);
      assert.ok(isIsoTimestamp(created.updated_at), `updated_at ${created.updated_at}`);

      const fetched = expectBody<ModelView>(await s.get(`/v2/models/${modelId}`), 200);
      assert.deepEqual(fetched, created);
    });

    it('PUT without a description creates a model whose description is null', async () => {
      const s = server();
      const modelId = uniqueId('nodesc');
      const created = await createModel(s, modelId);
      assert.equal(created.description, null);
    });

    it('PUT on an existing model answers 200, updates it and keeps created_at', async () => {
      const s = server();
      const modelId = uniqueId('update');
      const created = await createModel(s, modelId, 'first');

      const updated = expectBody<ModelView>(
        await s.put(`/v2/models/${modelId}`, { description: 'second' }),
        200,
      );
      assert.equal(updated.model_id, modelId);
      assert.equal(updated.description, 'second');
      assert.equal(updated.created_at, created.created_at);
      assert.ok(Date.parse(updated.updated_at) >= Date.parse(created.updated_at));

      const fetched = expectBody<ModelView>(await s.get(`/v2/models/${modelId}`), 200);
      assert.equal(fetched.description, 'second');
      assert.equal(fetched.created_at, created.created_at);
    });

    it('PUT without a body, or with {}, keeps the description', async () => {
      const s = server();
      const modelId = uniqueId('keep');
      const created = await createModel(s, modelId, 'keep me');

      const noBody = expectBody<ModelView>(await s.put(`/v2/models/${modelId}`), 200);
      assert.equal(noBody.description, 'keep me');
      assert.equal(noBody.created_at, created.created_at);

      const empty = expectBody<ModelView>(await s.put(`/v2/models/${modelId}`, {}), 200);
      assert.equal(empty.description, 'keep me');

      const fetched = expectBody<ModelView>(await s.get(`/v2/models/${modelId}`), 200);
      assert.equal(fetched.description, 'keep me');
    });

    it('GET of an unknown model is a 404 naming the model', async () => {
      const s = server();
      const modelId = uniqueId('missing');
      const message = assertError(await s.get(`/v2/models/${modelId}`), 404);
      assert.match(message, new RegExp(modelId));
    });

    it('a model id with characters outside A-Za-z0-9._- is a 400', async () => {
      const s = server();
      for (const badId of ['bad%20id', 'bad!id', 'caf%C3%A9', 'a%2Fb']) {
        assertError(await s.get(`/v2/models/${badId}`), 400);
        assertError(await s.put(`/v2/models/${badId}`, { description: 'x' }), 400);
        assertError(await s.put(`/v2/models/${badId}/versions/1`, { features: [] }), 400);
        assertError(await s.get(`/v2/models/${badId}/versions`), 400);
      }
    });

    it('a model id of 129 characters is a 400 with the error body', async () => {
      const s = server();
      const tooLong = 'x'.repeat(129);
      assertError(await s.get(`/v2/models/${tooLong}`), 400);
      assertError(await s.put(`/v2/models/${tooLong}`, { description: 'x' }), 400);
    });

    it('model and version ids of up to 128 characters are valid', async () => {
      const s = server();
      for (const length of [100, 101, 128]) {
        const modelId = `${uniqueId('long')}-`.padEnd(length, 'x');
        assert.equal(modelId.length, length);
        await createModel(s, modelId);
        expectBody(await s.get(`/v2/models/${modelId}`), 200);
        const version = 'v'.repeat(length);
        await createVersion(s, modelId, version, { features: [] });
        expectBody(await s.get(`/v2/models/${modelId}/versions/${version}`), 200);
      }
    });

    it('an invalid version id is a 400', async () => {
      const s = server();
      const modelId = uniqueId('badver');
      await createModel(s, modelId);
      assertError(await s.put(`/v2/models/${modelId}/versions/v%201`, { features: [] }), 400);
      assertError(await s.get(`/v2/models/${modelId}/versions/v%201`), 400);
    });

    it('a malformed model body is a 400 and stores nothing', async () => {
      const s = server();
      const modelId = uniqueId('badbody');
      assertError(await s.put(`/v2/models/${modelId}`, { description: 1 }), 400);
      assertError(await s.put(`/v2/models/${modelId}`, { description: null }), 400);
      assertError(await s.put(`/v2/models/${modelId}`, { description: 'x', name: 'y' }), 400);
      assertError(await s.put(`/v2/models/${modelId}`, ['description']), 400);
      assertError(
        await s.call('PUT', `/v2/models/${modelId}`, { rawBody: '{"description":' }),
        400,
      );
      assertError(await s.get(`/v2/models/${modelId}`), 404);
    });

    it('a description with a NUL character is a 400, not a 500', async () => {
      const s = server();
      const modelId = uniqueId('nul');
      assertError(await s.put(`/v2/models/${modelId}`, { description: 'a\u0000b' }), 400);
    });
  });

  describe('model listing', () => {
    it('GET /models pages in model_id order, without duplicates, ending with a null cursor', async () => {
      const s = server();
      const prefix = uniqueId('page');
      const ids = ['a', 'b', 'c', 'd', 'e'].map((suffix) => `${prefix}-${suffix}`);
      // Created out of order: the listing orders by id, not by creation.
      for (const index of [3, 0, 4, 1, 2]) await createModel(s, ids[index]!, `model ${index}`);

      // A token that sees exactly these five models gives an exact listing.
      const token = await s.token(['read'], { models: ids });
      const pages = await allPages<ModelView>(s, '/v2/models', { limit: 2, token });
      assert.deepEqual(
        pages.map((page) => page.items.map((model) => model.model_id)),
        [ids.slice(0, 2), ids.slice(2, 4), ids.slice(4)],
      );
      assert.equal(typeof pages[0]!.next_cursor, 'string');
      assert.equal(typeof pages[1]!.next_cursor, 'string');
      assert.equal(pages[2]!.next_cursor, null);
      assert.equal(pages[0]!.items[0]!.description, 'model 0');

      // A page size that divides the count exactly still ends with a null cursor.
      const five = expectBody<Page<ModelView>>(await s.get('/v2/models?limit=5', { token }), 200);
      assert.equal(five.items.length, 5);
      assert.equal(five.next_cursor, null);

      // The admin sees every model: all pages together hold each model once, ours in order.
      const all = (await allPages<ModelView>(s, '/v2/models', { limit: 2 })).flatMap((page) =>
        page.items.map((model) => model.model_id),
      );
      assert.equal(new Set(all).size, all.length, `duplicates in ${JSON.stringify(all)}`);
      assert.deepEqual(
        all.filter((id) => id.startsWith(`${prefix}-`)),
        ids,
      );
    });

    it('GET /models rejects a bad limit or cursor with 400', async () => {
      const s = server();
      assertError(await s.get('/v2/models?limit=0'), 400);
      assertError(await s.get('/v2/models?limit=501'), 400);
      assertError(await s.get('/v2/models?limit=abc'), 400);
      assertError(await s.get('/v2/models?cursor=not-a-cursor'), 400);
      const wrongShape = base64urlJson({ after: 'x' });
      assertError(await s.get(`/v2/models?cursor=${wrongShape}`), 400);
    });

    it('a token limited to some models lists only those and gets 403 on the others', async () => {
      const s = server();
      const m1 = uniqueId('granted');
      const m2 = uniqueId('denied');
      await createModel(s, m1);
      await createModel(s, m2);
      await createVersion(s, m2, '1', { features: [] });

      const reader = await s.token(['read'], { models: [m1] });
      const listed = expectBody<Page<ModelView>>(await s.get('/v2/models', { token: reader }), 200);
      assert.deepEqual(
        listed.items.map((model) => model.model_id),
        [m1],
      );
      assert.equal(listed.next_cursor, null);

      expectBody(await s.get(`/v2/models/${m1}`, { token: reader }), 200);
      assert.match(
        assertError(await s.get(`/v2/models/${m2}`, { token: reader }), 403),
        new RegExp(m2),
      );
      assertError(await s.get(`/v2/models/${m2}/versions`, { token: reader }), 403);
      assertError(await s.get(`/v2/models/${m2}/versions/1`, { token: reader }), 403);

      const writer = await s.token(['registry:write'], { models: [m1] });
      expectBody(await s.put(`/v2/models/${m1}`, { description: 'ok' }, { token: writer }), 200);
      assertError(await s.put(`/v2/models/${m2}`, { description: 'no' }, { token: writer }), 403);
      assertError(
        await s.put(`/v2/models/${m2}/versions/2`, { features: [] }, { token: writer }),
        403,
      );
      // Nothing was written by the refused calls.
      const m2Model = expectBody<ModelView>(await s.get(`/v2/models/${m2}`), 200);
      assert.equal(m2Model.description, null);
      assertError(await s.get(`/v2/models/${m2}/versions/2`), 404);

      // An empty grant sees no model at all.
      const nobody = await s.token(['read'], { models: [] });
      const none = expectBody<Page<ModelView>>(await s.get('/v2/models', { token: nobody }), 200);
      assert.deepEqual(none.items, []);
      assert.equal(none.next_cursor, null);
    });
  });

  describe('versions', () => {
    describe('creating and updating', () => {
      it('creating a version answers 201 with the defaults and the normalised features', async () => {
        const s = server();
        const modelId = uniqueId('ver');
        await createModel(s, modelId);
        const created = await createVersion(s, modelId, '1.0.0', { features: CONTRACT });

        assert.equal(created.model_id, modelId);
        assert.equal(created.model_version, '1.0.0');
        assert.deepEqual(created.features, NORMALISED_CONTRACT);
        assert.deepEqual(created.job_types, ['inference']);
        assert.deepEqual(created.handler, { type: 'worker' });
        assert.equal(created.timeout_s, 3600);
        assert.equal(created.max_attempts, 5);
        assert.ok(isIsoTimestamp(created.created_at), `created_at ${created.created_at}`);
        assert.ok(isIsoTimestamp(created.updated_at), `updated_at ${created.updated_at}`);

        const fetched = expectBody<VersionView>(
          await s.get(`/v2/models/${modelId}/versions/1.0.0`),
          200,
        );
        assert.deepEqual(fetched, created);
      });

      it('a version with an empty contract and explicit settings is created as sent', async () => {
        const s = server();
        const modelId = uniqueId('explicit');
        await createModel(s, modelId);
        const created = await createVersion(s, modelId, 'v2', {
          features: [],
          job_types: ['inference', 'training'],
          handler: { type: 'command', command: 'echo', args: ['hi'] },
          timeout_s: 30,
          max_attempts: 1,
        });
        assert.deepEqual(created.features, []);
        assert.deepEqual(created.job_types, ['inference', 'training']);
        assert.deepEqual(created.handler, { type: 'command', command: 'echo', args: ['hi'] });
        assert.equal(created.timeout_s, 30);
        assert.equal(created.max_attempts, 1);
      });

      it('PUT of the same contract is a 200 no-op, whatever the key order or omitted defaults', async () => {
        const s = server();
        const modelId = uniqueId('same');
        await createModel(s, modelId);
        const created = await createVersion(s, modelId, '1', { features: CONTRACT });

        const reordered = [
          { required: true, type: 'string', name: 'route' },
          { default: 60, required: false, type: 'integer', name: 'capacity' },
          { description: 'vehicle kind', values: ['bus', 'tram'], type: 'enum', name: 'kind' },
        ];
        for (const body of [
          { features: CONTRACT },
          { features: reordered },
          { features: NORMALISED_CONTRACT },
          { features: CONTRACT, job_types: ['inference'] },
        ]) {
          const again = expectBody<VersionView>(
            await s.put(`/v2/models/${modelId}/versions/1`, body),
            200,
          );
          assert.deepEqual(again.features, NORMALISED_CONTRACT);
          assert.deepEqual(again.job_types, ['inference']);
          assert.deepEqual(again.handler, { type: 'worker' });
          assert.equal(again.timeout_s, 3600);
          assert.equal(again.max_attempts, 5);
          assert.equal(again.created_at, created.created_at);
        }
      });

      it('re-sending a contract whose default is -0 is a no-op, not a 409', async () => {
        const s = server();
        const modelId = uniqueId('negzero');
        await createModel(s, modelId);
        const rawBody = '{"features":[{"name":"offset","type":"number","default":-0}]}';
        const path = `/v2/models/${modelId}/versions/1`;
        expectBody(await s.call('PUT', path, { rawBody }), 201);
        expectBody(await s.call('PUT', path, { rawBody }), 200);
      });

      it('PUT of a different contract is a 409 and the stored contract is unchanged', async () => {
        const s = server();
        const modelId = uniqueId('frozen');
        await createModel(s, modelId);
        await createVersion(s, modelId, '1', { features: CONTRACT });

        const [route, capacity, kind] = CONTRACT;
        const variants: [string, unknown[]][] = [
          ['a feature added', [...CONTRACT, { name: 'extra', type: 'boolean' }]],
          ['a feature removed', [route, capacity]],
          ['a type changed', [route, { ...capacity, type: 'number' }, kind]],
          ['required changed', [{ ...route, required: false }, capacity, kind]],
          ['a default changed', [route, { ...capacity, default: 61 }, kind]],
          ['enum values changed', [route, capacity, { ...kind, values: ['bus'] }]],
          ['no features at all', []],
        ];
        for (const [what, features] of variants) {
          const response = await s.put(`/v2/models/${modelId}/versions/1`, {
            features,
            timeout_s: 10,
          });
          const message = assertError(response, 409);
          assert.match(message, /frozen/, `${what}: ${message}`);
        }

        const stored = expectBody<VersionView>(
          await s.get(`/v2/models/${modelId}/versions/1`),
          200,
        );
        assert.deepEqual(stored.features, NORMALISED_CONTRACT);
        // The refused PUTs did not apply their settings either.
        assert.equal(stored.timeout_s, 3600);
      });

      it('PUT with different job_types is a 409; the same set in another order is a 200', async () => {
        const s = server();
        const modelId = uniqueId('jobtypes');
        await createModel(s, modelId);
        await createVersion(s, modelId, '1', {
          features: [],
          job_types: ['inference', 'training'],
        });
        await createVersion(s, modelId, '2', { features: [] });

        for (const jobTypes of [
          ['inference'],
          ['inference', 'training', 'retrain'],
          ['training'],
        ]) {
          const message = assertError(
            await s.put(`/v2/models/${modelId}/versions/1`, { features: [], job_types: jobTypes }),
            409,
          );
          assert.match(message, /job_types/);
        }
        assertError(
          await s.put(`/v2/models/${modelId}/versions/2`, {
            features: [],
            job_types: ['training'],
          }),
          409,
        );

        const same = expectBody<VersionView>(
          await s.put(`/v2/models/${modelId}/versions/1`, {
            features: [],
            job_types: ['training', 'inference'],
          }),
          200,
        );
        assert.deepEqual(same.job_types, ['inference', 'training']);
        const stored = expectBody<VersionView>(
          await s.get(`/v2/models/${modelId}/versions/2`),
          200,
        );
        assert.deepEqual(stored.job_types, ['inference']);
      });

      it('job_types must be a non-empty list of unique, well-formed names (400)', async () => {
        const s = server();
        const modelId = uniqueId('badjobtypes');
        await createModel(s, modelId);
        for (const jobTypes of [
          [],
          ['inference', 'inference'],
          ['Inference'],
          ['a-b'],
          'inference',
        ]) {
          assertError(
            await s.put(`/v2/models/${modelId}/versions/1`, { features: [], job_types: jobTypes }),
            400,
          );
        }
        assertError(await s.get(`/v2/models/${modelId}/versions/1`), 404);
      });

      it('handler, timeout_s and max_attempts may change with the same contract (200)', async () => {
        const s = server();
        const modelId = uniqueId('settings');
        await createModel(s, modelId);
        const created = await createVersion(s, modelId, '1', { features: CONTRACT });

        const handler = { type: 'command', command: 'python', args: ['-m', 'model'] };
        const updated = expectBody<VersionView>(
          await s.put(`/v2/models/${modelId}/versions/1`, {
            features: CONTRACT,
            handler,
            timeout_s: 60,
            max_attempts: 2,
          }),
          200,
        );
        assert.deepEqual(updated.handler, handler);
        assert.equal(updated.timeout_s, 60);
        assert.equal(updated.max_attempts, 2);
        assert.deepEqual(updated.features, NORMALISED_CONTRACT);
        assert.deepEqual(updated.job_types, ['inference']);
        assert.equal(updated.created_at, created.created_at);
        assert.ok(Date.parse(updated.updated_at) >= Date.parse(created.updated_at));

        const fetched = expectBody<VersionView>(
          await s.get(`/v2/models/${modelId}/versions/1`),
          200,
        );
        assert.deepEqual(fetched, updated);

        // Settings left out of a later PUT keep their stored values.
        const kept = expectBody<VersionView>(
          await s.put(`/v2/models/${modelId}/versions/1`, { features: CONTRACT }),
          200,
        );
        assert.deepEqual(kept.handler, handler);
        assert.equal(kept.timeout_s, 60);
        assert.equal(kept.max_attempts, 2);

        // And the handler can go back to the default.
        const worker = expectBody<VersionView>(
          await s.put(`/v2/models/${modelId}/versions/1`, {
            features: CONTRACT,
            handler: { type: 'worker' },
          }),
          200,
        );
        assert.deepEqual(worker.handler, { type: 'worker' });
        assert.equal(worker.timeout_s, 60);
      });

      it('concurrent PUTs of one new version create it once', async () => {
        const s = server();
        const modelId = uniqueId('race');
        await createModel(s, modelId);
        const responses = await Promise.all(
          Array.from({ length: 6 }, () =>
            s.put(`/v2/models/${modelId}/versions/1`, { features: CONTRACT }),
          ),
        );
        const statuses = responses.map((response) => response.status).sort();
        assert.deepEqual(statuses, [200, 200, 200, 200, 200, 201], JSON.stringify(statuses));

        const models = await Promise.all(
          Array.from({ length: 4 }, () => s.put(`/v2/models/${modelId}-m`, { description: 'x' })),
        );
        assert.deepEqual(models.map((response) => response.status).sort(), [200, 200, 200, 201]);
      });
    });

    describe('validation', () => {
      it('invalid feature definitions are a 422 that lists every problem', async () => {
        const s = server();
        const modelId = uniqueId('invalid');
        await createModel(s, modelId);
        const response = await s.put(`/v2/models/${modelId}/versions/1`, {
          features: [
            { name: 'dup', type: 'string' },
            { name: 'dup', type: 'integer' },
            { name: 'bad name!', type: 'string' },
            { name: 'colour', type: 'color' },
            { name: 'kind', type: 'enum' },
            { name: 'speed', type: 'number', default: 'fast' },
            { name: 'fine', type: 'boolean', default: true },
          ],
        });
        const message = assertError(response, 422);
        const { problems } = response.body as { problems?: FeatureProblem[] };
        assert.ok(Array.isArray(problems), `no problems list: ${JSON.stringify(response.body)}`);
        assert.equal(problems.length, 5, JSON.stringify(problems));

        const expected: [string, RegExp][] = [
          ['dup', /duplicate/],
          ['features[2]', /name must be/],
          ['colour', /unknown type "color"/],
          ['kind', /enum needs/],
          ['speed', /default must be a number/],
        ];
        for (const [feature, pattern] of expected) {
          assert.ok(
            problems.some(
              (problem) => problem.feature === feature && pattern.test(problem.message),
            ),
            `no problem for ${feature} matching ${pattern}: ${JSON.stringify(problems)}`,
          );
          assert.ok(message.includes(feature), `message does not name ${feature}: ${message}`);
        }
        assert.ok(!problems.some((problem) => problem.feature === 'fine'));
        assertError(await s.get(`/v2/models/${modelId}/versions/1`), 404);
      });

      it('each kind of invalid definition alone is a 422 naming it', async () => {
        const s = server();
        const modelId = uniqueId('invalid1');
        await createModel(s, modelId);
        const cases: [unknown, string, RegExp][] = [
          [{ name: '', type: 'string' }, 'features[0]', /name must be/],
          [{ name: 'x'.repeat(129), type: 'string' }, 'features[0]', /name must be/],
          [{ name: 'a', type: 'enum', values: [] }, 'a', /enum needs/],
          [{ name: 'a', type: 'enum', values: ['x', 'x'] }, 'a', /enum needs/],
          [{ name: 'a', type: 'enum', values: ['x'], default: 'y' }, 'a', /one of the enum values/],
          [{ name: 'a', type: 'string', values: ['x'] }, 'a', /only allowed for enum/],
          [{ name: 'a', type: 'integer', default: 1.5 }, 'a', /default must be an integer/],
          [{ name: 'a', type: 'string[]', default: [1] }, 'a', /default must be an array/],
          [{ name: 'a', type: 'object', default: [] }, 'a', /default must be an object/],
        ];
        for (const [definition, feature, pattern] of cases) {
          const response = await s.put(`/v2/models/${modelId}/versions/1`, {
            features: [definition],
          });
          assertError(response, 422);
          const { problems } = response.body as { problems: FeatureProblem[] };
          assert.deepEqual(
            problems.map((problem) => problem.feature),
            [feature],
            JSON.stringify(definition),
          );
          assert.match(problems[0]!.message, pattern, JSON.stringify(definition));
        }
      });

      it('a malformed version body is a 400 and stores nothing', async () => {
        const s = server();
        const modelId = uniqueId('badversion');
        await createModel(s, modelId);
        const path = `/v2/models/${modelId}/versions/1`;
        const bodies: [string, unknown][] = [
          ['no body', undefined],
          ['features missing', { job_types: ['inference'] }],
          ['features not an array', { features: {} }],
          ['a feature without a name', { features: [{ type: 'string' }] }],
          ['a feature without a type', { features: [{ name: 'a' }] }],
          ['a feature name that is not a string', { features: [{ name: 5, type: 'string' }] }],
          ['a feature with an unknown key', { features: [{ name: 'a', type: 'string', size: 3 }] }],
          ['a feature that is not an object', { features: ['a'] }],
          [
            'required not a boolean',
            { features: [{ name: 'a', type: 'string', required: 'yes' }] },
          ],
          ['an unknown top-level key', { features: [], owner: 'me' }],
          ['timeout_s 0', { features: [], timeout_s: 0 }],
          ['timeout_s not an integer', { features: [], timeout_s: 1.5 }],
          ['timeout_s as a string', { features: [], timeout_s: '60' }],
          ['max_attempts 0', { features: [], max_attempts: 0 }],
          ['max_attempts 101', { features: [], max_attempts: 101 }],
        ];
        for (const [what, body] of bodies) {
          const response = await s.put(path, body);
          assert.equal(response.status, 400, `${what}: ${JSON.stringify(response.body)}`);
          errorMessage(response);
        }
        assertError(await s.get(path), 404);
      });

      it('a NUL character in a feature definition or handler is refused, not a 500', async () => {
        const s = server();
        const modelId = uniqueId('nulversion');
        await createModel(s, modelId);
        const answers: string[] = [];
        for (const body of [
          { features: [{ name: 'a', type: 'string', description: 'x\u0000y' }] },
          { features: [{ name: 'a', type: 'string', default: 'x\u0000y' }] },
          { features: [{ name: 'a', type: 'object', default: { 'k\u0000': 1 } }] },
          { features: [], handler: { type: 'command', command: 'echo', args: ['x\u0000y'] } },
        ]) {
          const response = await s.put(`/v2/models/${modelId}/versions/1`, body);
          answers.push(`${JSON.stringify(body)} -> ${response.status}`);
        }
        assert.ok(
          answers.every((answer) => / -> (400|422)$/.test(answer)),
          answers.join('\n'),
        );
        assertError(await s.get(`/v2/models/${modelId}/versions/1`), 404);
      });
    });

    describe('handlers', () => {
      it('an http handler keeps its secret but no response shows it', async () => {
        const s = server();
        const modelId = uniqueId('http');
        await createModel(s, modelId);
        const secret = 'whsec_' + crypto.randomBytes(32).toString('base64');
        const handler = { type: 'http', url: 'http://127.0.0.1:9/hook', secret };
        const path = `/v2/models/${modelId}/versions/1`;
        const assertNoSecret = (what: string, body: unknown) => {
          const text = JSON.stringify(body);
          assert.ok(!text.includes(secret), `${what} shows the secret: ${text}`);
          assert.ok(!text.includes('"secret"'), `${what} has a secret field: ${text}`);
        };

        const created = await createVersion(s, modelId, '1', { features: [], handler });
        assert.deepEqual(created.handler, { type: 'http', url: 'http://127.0.0.1:9/hook' });
        assertNoSecret('PUT 201', created);

        const fetched = expectBody<VersionView>(await s.get(path), 200);
        assert.deepEqual(fetched.handler, { type: 'http', url: 'http://127.0.0.1:9/hook' });
        assertNoSecret('GET', fetched);

        const listed = expectBody<Page<VersionView>>(
          await s.get(`/v2/models/${modelId}/versions`),
          200,
        );
        assert.equal(listed.items.length, 1);
        assertNoSecret('list', listed);

        const updated = expectBody<VersionView>(await s.put(path, { features: [], handler }), 200);
        assert.deepEqual(updated.handler, { type: 'http', url: 'http://127.0.0.1:9/hook' });
        assertNoSecret('PUT 200', updated);

        const settingsOnly = expectBody<VersionView>(
          await s.put(path, { features: [], timeout_s: 5 }),
          200,
        );
        assertNoSecret('PUT 200 without handler', settingsOnly);

        // The secret is stored, since the dispatcher signs with it.
        const { rows } = await s.db.query<{ handler: unknown }>(
          'select handler from model_versions where model_id = $1 and model_version = $2',
          [modelId, '1'],
        );
        assert.deepEqual(rows[0]?.handler, handler);
      });

      it('a handler that does not match a known kind is a 400', async () => {
        const s = server();
        const modelId = uniqueId('badhandler');
        await createModel(s, modelId);
        const path = `/v2/models/${modelId}/versions/1`;
        const handlers: unknown[] = [
          { type: 'nope' },
          {},
          'worker',
          { type: 'worker', url: 'http://x' },
          { type: 'http', secret: VALID_SECRET },
          { type: 'http', url: 'ftp://127.0.0.1/hook', secret: VALID_SECRET },
          { type: 'http', url: 'not a url', secret: VALID_SECRET },
          // A url problem is a 400 before the secret's rule (a 422) is looked at.
          { type: 'http', url: 'not a url', secret: 'my-shared-secret' },
          { type: 'command' },
          { type: 'truefoundry', base_url: 'https://tf.example', deployment_id: 'd' },
        ];
        for (const handler of handlers) {
          const response = await s.put(path, { features: [], handler });
          assert.equal(
            response.status,
            400,
            `${JSON.stringify(handler)}: ${JSON.stringify(response.body)}`,
          );
          errorMessage(response);
        }
        assertError(await s.get(path), 404);
      });

      it('a truefoundry handler needs exactly one of deployment_id and application_id', async () => {
        const s = server();
        const modelId = uniqueId('truefoundry');
        await createModel(s, modelId);
        const base = {
          type: 'truefoundry',
          base_url: 'https://tf.example.com',
          token_env: 'TFY_API_TOKEN',
        };

        const both = await s.put(`/v2/models/${modelId}/versions/1`, {
          features: [],
          handler: { ...base, deployment_id: 'dep-1', application_id: 'app-1' },
        });
        assert.match(assertError(both, 400), /exactly one of deployment_id and application_id/);
        const neither = await s.put(`/v2/models/${modelId}/versions/1`, {
          features: [],
          handler: base,
        });
        assert.match(assertError(neither, 400), /exactly one of deployment_id and application_id/);
        assertError(await s.get(`/v2/models/${modelId}/versions/1`), 404);

        const byDeployment = await createVersion(s, modelId, '1', {
          features: [],
          handler: { ...base, deployment_id: 'dep-1' },
        });
        assert.deepEqual(byDeployment.handler, { ...base, deployment_id: 'dep-1' });
        const byApplication = await createVersion(s, modelId, '2', {
          features: [],
          handler: { ...base, application_id: 'app-1' },
        });
        assert.deepEqual(byApplication.handler, { ...base, application_id: 'app-1' });

        const anyVariable = await s.put(`/v2/models/${modelId}/versions/3`, {
          features: [],
          handler: { ...base, application_id: 'app-1', token_env: 'DATABASE_URL' },
        });
        assert.match(
          assertError(anyVariable, 400),
          /token_env must name a variable starting with TFY_/,
        );

        // An update to an invalid truefoundry handler is refused and leaves the stored one.
        assertError(
          await s.put(`/v2/models/${modelId}/versions/1`, {
            features: [],
            handler: { ...base, deployment_id: 'dep-1', application_id: 'app-1' },
          }),
          400,
        );
        const stored = expectBody<VersionView>(
          await s.get(`/v2/models/${modelId}/versions/1`),
          200,
        );
        assert.deepEqual(stored.handler, { ...base, deployment_id: 'dep-1' });
      });
    });

    describe('reading and listing', () => {
      it('versions of an unknown model, and unknown versions, are 404s', async () => {
        const s = server();
        const unknownModel = uniqueId('nomodel');
        const putMessage = assertError(
          await s.put(`/v2/models/${unknownModel}/versions/1`, { features: [] }),
          404,
        );
        assert.match(putMessage, new RegExp(unknownModel));
        assert.match(
          assertError(await s.get(`/v2/models/${unknownModel}/versions/1`), 404),
          new RegExp(unknownModel),
        );
        assert.match(
          assertError(await s.get(`/v2/models/${unknownModel}/versions`), 404),
          new RegExp(unknownModel),
        );
        // The refused PUT did not create the model either.
        assertError(await s.get(`/v2/models/${unknownModel}`), 404);

        const modelId = uniqueId('known');
        await createModel(s, modelId);
        const message = assertError(await s.get(`/v2/models/${modelId}/versions/9.9.9`), 404);
        assert.match(message, /9\.9\.9/);
      });

      it("GET /models/{m}/versions pages the model's versions in order", async () => {
        const s = server();
        const modelId = uniqueId('versions');
        const other = uniqueId('versions-other');
        await createModel(s, modelId);
        await createModel(s, other);
        for (const version of ['2.0.0', '1.0.0', '1.1.0']) {
          await createVersion(s, modelId, version, { features: CONTRACT });
        }
        await createVersion(s, other, '1.0.5', { features: [] });

        const pages = await allPages<VersionView>(s, `/v2/models/${modelId}/versions`, {
          limit: 2,
        });
        assert.deepEqual(
          pages.map((page) => page.items.map((version) => version.model_version)),
          [['1.0.0', '1.1.0'], ['2.0.0']],
        );
        assert.equal(typeof pages[0]!.next_cursor, 'string');
        assert.equal(pages[1]!.next_cursor, null);
        for (const version of pages.flatMap((page) => page.items)) {
          assert.equal(version.model_id, modelId);
          assert.deepEqual(version.features, NORMALISED_CONTRACT);
          assert.deepEqual(version.handler, { type: 'worker' });
        }

        const empty = uniqueId('noversions');
        await createModel(s, empty);
        const none = expectBody<Page<VersionView>>(
          await s.get(`/v2/models/${empty}/versions`),
          200,
        );
        assert.deepEqual(none, { items: [], next_cursor: null });
        assertError(await s.get(`/v2/models/${modelId}/versions?cursor=zzz`), 400);
      });
    });
  });

  describe('permissions', () => {
    it('a read token may GET but gets 403 on every registry write', async () => {
      const s = server();
      const modelId = uniqueId('readonly');
      await createModel(s, modelId, 'before');
      await createVersion(s, modelId, '1', { features: [] });
      const token = await s.token(['read']);

      const message = assertError(
        await s.put(`/v2/models/${modelId}`, { description: 'after' }, { token }),
        403,
      );
      assert.match(message, /registry:write/);
      assertError(await s.put(`/v2/models/${uniqueId('readonly-new')}`, {}, { token }), 403);
      assertError(
        await s.put(`/v2/models/${modelId}/versions/1`, { features: [], timeout_s: 9 }, { token }),
        403,
      );
      assertError(
        await s.put(`/v2/models/${modelId}/versions/2`, { features: [] }, { token }),
        403,
      );

      expectBody(await s.get('/v2/models', { token }), 200);
      const model = expectBody<ModelView>(await s.get(`/v2/models/${modelId}`, { token }), 200);
      assert.equal(model.description, 'before');
      const version = expectBody<VersionView>(
        await s.get(`/v2/models/${modelId}/versions/1`, { token }),
        200,
      );
      assert.equal(version.timeout_s, 3600);
      expectBody(await s.get(`/v2/models/${modelId}/versions`, { token }), 200);
      assertError(await s.get(`/v2/models/${modelId}/versions/2`, { token }), 404);
    });

    it('a registry:write token without read may write but gets 403 on every GET', async () => {
      const s = server();
      const modelId = uniqueId('writeonly');
      const token = await s.token(['registry:write']);
      expectBody(await s.put(`/v2/models/${modelId}`, { description: 'd' }, { token }), 201);
      expectBody(await s.put(`/v2/models/${modelId}/versions/1`, { features: [] }, { token }), 201);

      assert.match(assertError(await s.get(`/v2/models/${modelId}`, { token }), 403), /read/);
      assertError(await s.get('/v2/models', { token }), 403);
      assertError(await s.get(`/v2/models/${modelId}/versions`, { token }), 403);
      assertError(await s.get(`/v2/models/${modelId}/versions/1`, { token }), 403);
    });

    it('tokens with other scopes get 403 on registry writes', async () => {
      const s = server();
      const modelId = uniqueId('otherscope');
      for (const scope of [
        'tenants:write',
        'assignments:write',
        'jobs:write',
        'jobs:complete',
      ] as const) {
        const token = await s.token([scope]);
        assertError(await s.put(`/v2/models/${modelId}`, { description: scope }, { token }), 403);
      }
      assertError(await s.get(`/v2/models/${modelId}`), 404);
    });

    it('a missing or invalid token is a 401 and writes nothing', async () => {
      const s = server();
      const modelId = uniqueId('anon');
      const otherSecret = crypto.randomBytes(32);
      const forged = await issueToken(otherSecret, TEST_JWT, {
        subject: 'intruder',
        scopes: ['admin'],
        ttl: '1h',
      });
      const badHeaders: [string, { token?: string | null; headers?: Record<string, string> }][] = [
        ['no token', { token: null }],
        ['garbage token', { token: 'garbage' }],
        ['token signed with another key', { token: forged }],
        [
          'not a Bearer header',
          { token: null, headers: { authorization: `Basic ${s.adminToken}` } },
        ],
      ];
      for (const [what, options] of badHeaders) {
        for (const response of [
          await s.get('/v2/models', options),
          await s.get(`/v2/models/${modelId}`, options),
          await s.put(`/v2/models/${modelId}`, { description: 'x' }, options),
          await s.put(`/v2/models/${modelId}/versions/1`, { features: [] }, options),
          await s.get(`/v2/models/${modelId}/versions`, options),
        ]) {
          assert.equal(response.status, 401, `${what}: ${JSON.stringify(response.body)}`);
          errorMessage(response);
        }
      }
      // 401 comes before body validation.
      assertError(await s.put(`/v2/models/${modelId}`, { description: 1 }, { token: null }), 401);
      assertError(await s.get(`/v2/models/${modelId}`), 404);
    });
  });
});
