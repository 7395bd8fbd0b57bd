import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as jose from 'jose';
import { SCOPES, type Scope } from '../../src/auth/caller.js';
import {
  apiOperations,
  fillPath,
  tenantParams,
  validBody,
  type ApiOperation,
} from '../helpers/api-operations.js';
import { assertError, assertStatus, expectBody } from '../helpers/assertions.js';
import { base64urlJson } from '../helpers/encoding.js';
import {
  JwksServer,
  rsaSigningKey,
  signRs256,
  validClaims,
  type SigningKey,
} from '../helpers/jwks-server.js';
import { seedTenant, type SeededTenant } from '../helpers/seeded-tenant.js';
import { describeOnEachBackend, errorMessage, type TestServer } from '../helpers/test-server.js';

/**
 * Who may do what, route by route. test/integration/route-matrix.test.ts already walks every
 * route with no token, a garbage token and an expired one (401), a token holding every scope
 * but the route's (403) and a token for another client or model (403), all on made-up ids.
 * This file adds what it leaves out: the whole JWT matrix with real signatures on every route,
 * every single scope against every route in both directions, the 403s DECISIONS names beyond
 * the scope table, one tenant's token against another tenant's real objects, and the fields a
 * caller may not set.
 */

const now = () => Math.floor(Date.now() / 1000);

/** Tokens PIE must refuse with 401, each signed for real where it has a signature. */
async function refusedTokens(key: SigningKey, jwks: boolean) {
  const otherKeySameKid = await rsaSigningKey(key.kid);
  const stranger = await rsaSigningKey('unknown-kid');
  const pem = key.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const genuine = await signRs256(key, validClaims());
  const [header, , signature] = genuine.split('.');
  const tokens: Record<string, string | null> = {
    'no token': null,
    'alg none': `${base64urlJson({ alg: 'none', typ: 'JWT', kid: key.kid })}.${base64urlJson(validClaims())}.`,
    'HS256 signed with the RSA public key PEM (algorithm confusion)': await new jose.SignJWT(
      validClaims(),
    )
      .setProtectedHeader({ alg: 'HS256', kid: key.kid })
      .sign(new TextEncoder().encode(pem)),
    'unknown kid, unknown key': await signRs256(stranger, validClaims()),
    'signed by another key under the right kid': await signRs256(otherKeySameKid, validClaims()),
    'PS256, an algorithm not configured': await new jose.SignJWT(validClaims())
      .setProtectedHeader({ alg: 'PS256', kid: key.kid })
      .sign(key.privateKey),
    'wrong issuer': await signRs256(key, validClaims({ iss: 'someone-else' })),
    'wrong audience': await signRs256(key, validClaims({ aud: 'another-api' })),
    expired: await signRs256(key, validClaims({ exp: now() - 60 })),
    'not yet valid (nbf in an hour)': await signRs256(key, validClaims({ nbf: now() + 3600 })),
    'payload swapped under a genuine signature': `${header}.${base64urlJson(
      validClaims({ sub: 'root', clients: '*' }),
    )}.${signature}`,
    'not a JWT': 'not.a.jwt',
  };
  // With one configured public key the kid is not consulted; with a JWKS it must match.
  if (jwks) tokens['genuine key, kid not in the set'] = await signRs256(key, validClaims(), 'k9');
  return tokens;
}

async function expectJwtMatrix(server: TestServer, key: SigningKey, jwks: boolean) {
  const tenant = await seedWithRs256(server, key);
  const params = tenantParams(tenant);
  const tokens = await refusedTokens(key, jwks);
  const wrong: string[] = [];
  let checked = 0;
  for (const operation of await apiOperations(server)) {
    const path = fillPath(operation.path, params);
    const body = validBody(operation, tenant);
    for (const [name, token] of Object.entries(tokens)) {
      const response = await server.call(operation.method, path, { token, body });
      checked += 1;
      const message = (response.body as { message?: unknown } | undefined)?.message;
      if (
        response.status !== 401 ||
        response.body?.success !== false ||
        typeof message !== 'string'
      ) {
        wrong.push(`${operation.method} ${operation.path} with ${name}: ${response.status}`);
      }
    }
    // The control: a genuine token gets past authentication on the same request.
    const genuine = await signRs256(key, validClaims());
    const control = await server.call(operation.method, path, { token: genuine, body });
    assert.notEqual(control.status, 401, `${operation.method} ${operation.path} genuine token`);
  }
  assert.deepEqual(wrong, []);
  return checked;
}

/** Seeds a tenant through the API with an RS256 admin token (the server's own is HS256). */
async function seedWithRs256(server: TestServer, key: SigningKey) {
  const token = await signRs256(key, validClaims({ exp: now() + 3600 }));
  const proxy = Object.create(server) as TestServer;
  proxy.call = (method, path, options = {}) => server.call(method, path, { token, ...options });
  return seedTenant(proxy, 1);
}

let rsa: SigningKey;
let jwksServer: JwksServer;
before(async () => {
  rsa = await rsaSigningKey('callers-k1');
});

describeOnEachBackend(
  'callers: the JWT matrix on every route (RS256 public key)',
  (server) => {
    it('401 {success:false, message} for every refused token on every /v2 route', async (t) => {
      const checked = await expectJwtMatrix(server(), rsa, false);
      t.diagnostic(`${checked} refused requests`);
    });
  },
  async () => ({
    kind: 'public-key',
    pem: rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  }),
);

describeOnEachBackend(
  'callers: the JWT matrix on every route (RS256 JWKS)',
  (server) => {
    after(() => jwksServer.close());
    it('401 {success:false, message} for every refused token on every /v2 route', async (t) => {
      const checked = await expectJwtMatrix(server(), rsa, true);
      t.diagnostic(`${checked} refused requests`);
    });
  },
  async () => {
    jwksServer = await JwksServer.start([rsa]);
    return { kind: 'jwks', url: jwksServer.url };
  },
);

describeOnEachBackend('callers: scopes, claims and tenants (HS256)', (server) => {
  let a: SeededTenant;
  let b: SeededTenant;
  let operations: ApiOperation[];
  before(async () => {
    a = await seedTenant(server());
    b = await seedTenant(server());
    operations = await apiOperations(server());
  });

  describe('scopes', () => {
    it('every route against every single scope: 403 naming the scope unless it is the one or admin', async (t) => {
      const scoped = await seedTenant(server(), 2);
      const params = tenantParams(scoped);
      const tokens = new Map<Scope, string>();
      for (const scope of SCOPES) tokens.set(scope, await server().token([scope]));
      const wrong: string[] = [];
      for (const operation of operations) {
        for (const scope of SCOPES) {
          const response = await server().call(operation.method, fillPath(operation.path, params), {
            token: tokens.get(scope)!,
            body: validBody(operation, scoped),
          });
          const allowed = scope === operation.scope || scope === 'admin';
          const where = `${operation.method} ${operation.path} with "${scope}": ${response.status}`;
          if (allowed && [401, 403].includes(response.status)) wrong.push(`${where} (allowed)`);
          if (!allowed) {
            const named =
              response.status === 403 && errorMessage(response).includes(`"${operation.scope}"`);
            if (!named) wrong.push(`${where} (expected 403 naming "${operation.scope}")`);
          }
        }
      }
      t.diagnostic(`${operations.length} routes x ${SCOPES.length} scopes`);
      assert.deepEqual(wrong, []);
    });

    it('403s beyond the scope table: command handlers, model claims, callback tokens', async () => {
      const version = `/v2/models/${a.modelId}/versions/9.0.0`;
      const command = { features: [], handler: { type: 'command', command: 'true' } };
      const registrar = await server().token(['registry:write']);
      assertError(await server().put(version, command, { token: registrar }), 403, 'admin');
      assertStatus(await server().put(version, command), 201);

      // A models claim that leaves out the model the body or the assignment names.
      const otherModel = { models: ['some-other-model'] };
      const assigner = await server().token(['assignments:write'], otherModel);
      assertError(
        await server().put(
          `${a.domainPath}/assignments/extra`,
          { model_id: a.modelId, model_version: a.version },
          { token: assigner },
        ),
        403,
        `model "${a.modelId}"`,
      );
      const runner = await server().token(['jobs:write'], otherModel);
      assertError(
        await server().post(
          `${a.domainPath}/service/service-1/assignments/default/jobs`,
          {},
          {
            token: runner,
          },
        ),
        403,
        `model "${a.modelId}"`,
      );
      assertError(
        await server().post(`${a.domainPath}/services/init`, {}, { token: runner }),
        403,
        `model "${a.modelId}"`,
      );
      assertError(
        await server().post(
          `${a.domainPath}/subscriptions`,
          validBody({ method: 'POST', path: '/subscriptions', scope: 'jobs:write' }, a),
          { token: runner },
        ),
        403,
        `model "${a.modelId}"`,
      );

      // A callback token completes its own job and nothing else.
      const { jobs } = expectBody<{ jobs: { job_id: string; callback: { token: string } }[] }>(
        await server().post(`/v2/models/${a.modelId}/versions/${a.version}/jobs/claim`, {
          worker_id: 'callers',
          max_jobs: 1,
        }),
        200,
      );
      const [claimed] = jobs;
      assert.ok(claimed, 'a queued job to claim');
      const callback = claimed.callback.token;
      const otherJob = a.queuedJobs.find((id) => id !== claimed.job_id)!;
      for (const [method, path] of [
        ['GET', `${a.domainPath}/jobs/${claimed.job_id}`],
        ['GET', '/v2/clients'],
        ['POST', `${a.domainPath}/jobs/${claimed.job_id}/cancel`],
        ['POST', `/v2/models/${a.modelId}/versions/${a.version}/jobs/${otherJob}/complete`],
      ] as const) {
        const body = method === 'POST' ? { status: 'success' } : undefined;
        assertError(await server().call(method, path, { token: callback, body }), 403);
      }
    });
  });

  describe("another tenant's objects", () => {
    it("another tenant's real objects, on every route under its client: 403, and nothing changes", async () => {
      // Client A only, but both models: the client claim alone must keep B out.
      const tokenA = await server().token(
        [
          'read',
          'registry:write',
          'tenants:write',
          'assignments:write',
          'jobs:write',
          'jobs:complete',
        ],
        { clients: [a.clientId], models: [a.modelId, b.modelId] },
      );
      const adminA = await server().token(['admin'], { clients: [a.clientId] });
      const before = await snapshot(server(), b);
      const params = tenantParams(b);
      const leaked: string[] = [];
      for (const operation of operations.filter((op) => op.path.includes('{client_id}'))) {
        for (const token of [tokenA, adminA]) {
          const response = await server().call(operation.method, fillPath(operation.path, params), {
            token,
            body: validBody(operation, b),
          });
          if (response.status !== 403 || !errorMessage(response).includes(`"${b.clientId}"`)) {
            leaked.push(`${operation.method} ${operation.path}: ${response.status}`);
          }
        }
      }
      assert.deepEqual(leaked, []);
      assert.deepEqual(await snapshot(server(), b), before, "B's objects are unchanged");
    });

    it("completing, heartbeating or claiming B's jobs from A: refused, B's jobs untouched", async () => {
      const tokenA = await server().token(['jobs:complete', 'read'], {
        clients: [a.clientId],
        models: [a.modelId, b.modelId],
      });
      const jobB = b.queuedJobs[1]!;
      const bVersion = `/v2/models/${b.modelId}/versions/${b.version}`;
      assertError(
        await server().post(
          `${bVersion}/jobs/${jobB}/complete`,
          { status: 'success' },
          { token: tokenA },
        ),
        403,
        `client "${b.clientId}"`,
      );
      assertError(
        await server().post(
          `${bVersion}/jobs/${jobB}/heartbeat`,
          { attempt: 1 },
          { token: tokenA },
        ),
        403,
        `client "${b.clientId}"`,
      );
      // Through A's own model path the job does not exist for A.
      assertError(
        await server().post(
          `/v2/models/${a.modelId}/versions/${a.version}/jobs/${jobB}/complete`,
          { status: 'success' },
          { token: tokenA },
        ),
        404,
      );
      // A worker for client A claims nothing of B's, though B has queued jobs of that model.
      const claim = expectBody<{ jobs: unknown[] }>(
        await server().post(
          `${bVersion}/jobs/claim`,
          { worker_id: 'a-worker', max_jobs: 100 },
          {
            token: tokenA,
          },
        ),
        200,
      );
      assert.deepEqual(claim.jobs, []);
      const job = expectBody<{ status: string; attempt: number }>(
        await server().get(`${b.domainPath}/jobs/${jobB}`),
        200,
      );
      assert.deepEqual([job.status, job.attempt], ['queued', 0]);
    });

    it("B's ids under A's paths are 404, and path tricks never reach B", async () => {
      const tokenA = await server().token(['read', 'jobs:write'], { clients: [a.clientId] });
      const onA = (path: string) => `${a.domainPath}${path}`;
      for (const [method, path] of [
        ['GET', onA(`/jobs/${b.queuedJobs[0]}`)],
        ['POST', onA(`/jobs/${b.queuedJobs[0]}/cancel`)],
        ['GET', onA(`/subscriptions/${b.subscriptionId}`)],
        ['DELETE', onA(`/subscriptions/${b.subscriptionId}`)],
        ['POST', onA(`/subscriptions/${b.subscriptionId}/pause`)],
      ] as const) {
        assertError(await server().call(method, path, { token: tokenA }), 404);
      }
      const bDomains = `/v2/clients/${b.clientId}/domains`;
      for (const path of [
        `/v2/clients/${a.clientId}/../${b.clientId}/domains`, // fetch resolves the dot-dot
        `/v2/clients/${a.clientId}%2F..%2F${b.clientId}/domains`,
        `/v2/clients/${b.clientId}%00/domains`,
        `/v2/clients/${a.clientId},${b.clientId}/domains`,
        `/v2/clients/${b.clientId.toUpperCase()}/domains`,
        `${bDomains}/`,
        `${bDomains}?client_id=${a.clientId}`,
      ]) {
        const response = await server().get(path, { token: tokenA });
        assert.ok([400, 403, 404].includes(response.status), `${path}: ${response.status}`);
        errorMessage(response);
      }
    });

    it("lists never show B's objects, whatever the query string says", async () => {
      const tokenA = await server().token(['read'], { clients: [a.clientId], models: [a.modelId] });
      const lists: [string, string][] = [
        ['/v2/clients', 'client_id'],
        [`/v2/clients?client_id=${b.clientId}&limit=500`, 'client_id'],
        [`/v2/clients?cursor=${base64urlJson([''])}`, 'client_id'],
        ['/v2/models?limit=500', 'model_id'],
        [`/v2/models?model_id=${b.modelId}`, 'model_id'],
        [`/v2/clients/${a.clientId}/domains?client_id=${b.clientId}`, 'client_id'],
        [`${a.domainPath}/services?client_id=${b.clientId}`, 'client_id'],
        [`${a.domainPath}/assignments?client_id=${b.clientId}`, 'client_id'],
        [`${a.domainPath}/jobs?client_id=${b.clientId}&limit=500`, 'client_id'],
        [`${a.domainPath}/jobs?service_id=service-1&assignment_key=svc-key`, 'client_id'],
        [`${a.domainPath}/subscriptions?model_id=${b.modelId}`, 'client_id'],
        [`${a.domainPath}/subscriptions?client_id=${b.clientId}`, 'client_id'],
      ];
      for (const [path, field] of lists) {
        const page = expectBody<{ items: Record<string, unknown>[] }>(
          await server().get(path, { token: tokenA }),
          200,
        );
        const mine = field === 'model_id' ? a.modelId : a.clientId;
        const theirs = page.items.filter((item) => item[field] !== mine);
        assert.deepEqual(theirs, [], path);
        assert.ok(!JSON.stringify(page).includes(`"${b.clientId}"`), path);
        assert.ok(!JSON.stringify(page).includes(`"${b.modelId}"`), path);
      }
      // B's jobs do exist, under B, for a token that may read B.
      const bJobs = expectBody<{ items: unknown[] }>(
        await server().get(`${b.domainPath}/jobs`),
        200,
      );
      assert.ok(bJobs.items.length > 0);
    });

    it("an Idempotency-Key A used does not replay A's answer to B", async () => {
      const key = { 'idempotency-key': 'shared-key-1' };
      const run = (t: SeededTenant, token: string) =>
        server().post(
          `${t.domainPath}/service/service-1/assignments/default/jobs`,
          { input: {} },
          {
            token,
            headers: key,
          },
        );
      // Same subject ("test") on both tokens: only the client in the path tells them apart.
      const tokenA = await server().token(['jobs:write'], { clients: [a.clientId] });
      const tokenB = await server().token(['jobs:write'], { clients: [b.clientId] });
      const first = expectBody<{ job_id: string }>(await run(a, tokenA), 202);
      const other = await run(b, tokenB);
      const second = expectBody<{ job_id: string }>(other, 202);
      assert.notEqual(second.job_id, first.job_id);
      assert.equal(other.headers.get('idempotent-replayed'), null);
      assertStatus(await server().get(`${b.domainPath}/jobs/${second.job_id}`), 200);
      assertStatus(await server().get(`${b.domainPath}/jobs/${first.job_id}`), 404);
    });
  });

  describe('fields a caller may not set', () => {
    it('fields a caller may not set are refused (400) and nothing is stored', async () => {
      const serviceJobs = `${a.domainPath}/service/service-1/assignments/default/jobs`;
      const domainJobs = `${a.domainPath}/assignments/domain-key/jobs`;
      const jobCount = async () =>
        expectBody<{ items: unknown[] }>(await server().get(`${a.domainPath}/jobs?limit=500`), 200)
          .items.length;
      const jobsBefore = await jobCount();
      const jobFields = {
        status: 'success',
        attempt: 3,
        output: { forged: true },
        error: { forged: true },
        client_id: b.clientId,
        domain_id: b.domainId,
        job_id: '123456789012',
        assignment_id: '2489e9ad-2ee2-4e00-8ec9-32d5f69181c0',
        features: { route: 'forged' },
        trigger: { forged: true },
        lineage: [],
        created_at: '2000-01-01T00:00:00.000Z',
        deadline: '2999-01-01T00:00:00.000Z',
      };
      for (const path of [serviceJobs, domainJobs]) {
        for (const [field, value] of Object.entries(jobFields)) {
          assertError(await server().post(path, { [field]: value }), 400, `"${field}"`);
        }
      }
      assert.equal(await jobCount(), jobsBefore, 'no job was started');

      const service = `${a.domainPath}/services/service-2`;
      const serviceBefore = expectBody(await server().get(service), 200);
      for (const [field, value] of Object.entries({
        client_id: b.clientId,
        domain_id: 'elsewhere',
        service_id: 'renamed',
        resolved_features: { route: 'forged' },
        created_at: '2000-01-01T00:00:00.000Z',
        updated_at: '2000-01-01T00:00:00.000Z',
        departed_at: null,
      })) {
        assertError(await server().put(service, { [field]: value }), 400, `"${field}"`);
      }
      assertError(await server().put(service, { status: 'queued' }), 400, 'status');
      assert.deepEqual(expectBody(await server().get(service), 200), serviceBefore);

      const assignment = `${a.domainPath}/assignments/domain-key`;
      const assignmentBefore = expectBody(await server().get(assignment), 200);
      const target = { model_id: a.modelId, model_version: a.version };
      for (const [field, value] of Object.entries({
        assignment_id: '2489e9ad-2ee2-4e00-8ec9-32d5f69181c0',
        client_id: b.clientId,
        domain_id: 'elsewhere',
        service_id: 'service-1',
        scope: 'service',
        key: 'other-key',
        created_at: '2000-01-01T00:00:00.000Z',
        archived_at: null,
      })) {
        assertError(
          await server().put(assignment, { ...target, [field]: value }),
          400,
          `"${field}"`,
        );
      }
      assert.deepEqual(expectBody(await server().get(assignment), 200), assignmentBefore);

      const subscriptions = `${a.domainPath}/subscriptions`;
      const subscriptionsBefore = expectBody(await server().get(subscriptions), 200);
      const subscription = validBody(
        { method: 'POST', path: '/subscriptions', scope: 'jobs:write' },
        a,
      ) as object;
      for (const [field, value] of Object.entries({
        subscription_id: '2489e9ad-2ee2-4e00-8ec9-32d5f69181c0',
        client_id: b.clientId,
        domain_id: 'elsewhere',
        created_by_job_id: a.queuedJobs[0],
        created_at: '2000-01-01T00:00:00.000Z',
        updated_at: '2000-01-01T00:00:00.000Z',
      })) {
        assertError(
          await server().post(subscriptions, { ...subscription, [field]: value }),
          400,
          `"${field}"`,
        );
      }
      assertError(await server().post(subscriptions, { ...subscription, status: 'running' }), 400);
      assert.deepEqual(expectBody(await server().get(subscriptions), 200), subscriptionsBefore);

      const jobPath = `${a.domainPath}/jobs/${a.queuedJobs[2]}`;
      const jobBefore = expectBody(await server().get(jobPath), 200);
      const complete = `/v2/models/${a.modelId}/versions/${a.version}/jobs/${a.queuedJobs[2]}/complete`;
      for (const [field, value] of Object.entries({
        job_id: a.queuedJobs[3],
        client_id: b.clientId,
        model_id: b.modelId,
        triggered_events: [],
      })) {
        assertError(
          await server().post(complete, { status: 'success', [field]: value }),
          400,
          `"${field}"`,
        );
      }
      assert.deepEqual(expectBody(await server().get(jobPath), 200), jobBefore);
    });

    it('the same names inside free-form objects are data, and PIE keeps its own values', async () => {
      const forged = {
        status: 'success',
        client_id: b.clientId,
        attempt: 99,
        job_id: '123456789012',
        output: { forged: true },
      };
      const started = expectBody<{ job_id: string }>(
        await server().post(`${a.domainPath}/service/service-1/assignments/default/jobs`, {
          input: forged,
        }),
        202,
      );
      const job = expectBody<Record<string, unknown>>(
        await server().get(`${a.domainPath}/jobs/${started.job_id}`),
        200,
      );
      assert.notEqual(started.job_id, forged.job_id);
      assert.deepEqual(
        [job['status'], job['client_id'], job['attempt'], job['output'], job['input']],
        ['queued', a.clientId, 0, null, forged],
      );

      const service = expectBody<Record<string, unknown>>(
        await server().put(`${a.domainPath}/services/service-forged`, {
          provided_features: { route: 'r9', client_id: b.clientId, status: 'departed' },
        }),
        201,
      );
      assert.deepEqual(
        [service['client_id'], service['status'], service['resolved_features']],
        [a.clientId, 'active', { route: 'r9', capacity: 60 }],
      );
    });
  });
});

/** What a cross-tenant attempt could have changed in B, read with the admin token. */
async function snapshot(server: TestServer, tenant: SeededTenant) {
  const read = async (path: string) => expectBody<unknown>(await server.get(path), 200);
  return {
    client: await read(`/v2/clients/${tenant.clientId}`),
    domain: await read(tenant.domainPath),
    services: await read(`${tenant.domainPath}/services`),
    assignments: await read(`${tenant.domainPath}/assignments`),
    serviceAssignments: await read(`${tenant.domainPath}/service/service-1/assignments`),
    jobs: await read(`${tenant.domainPath}/jobs?limit=500`),
    subscriptions: await read(`${tenant.domainPath}/subscriptions`),
  };
}
