import assert from 'node:assert/strict';
import { after, before, it, type TestContext } from 'node:test';
import { SCOPES } from '../../src/auth/caller.js';
import { validBody } from '../helpers/api-operations.js';
import { testBackends } from '../helpers/backends.js';
import { ROUTE_CONTRACT, uniqueId } from '../helpers/fixtures.js';
import {
  Conformance,
  type ConformanceRequest,
  type DocumentedOperation,
} from '../helpers/openapi-conformance.js';
import { describeOnEachBackend, TestServer, type ApiResponse } from '../helpers/test-server.js';

/**
 * Conformance of PIE to its own OpenAPI document: at least one request per documented
 * (operation, status) pair that can be provoked, each answer checked against what the document
 * gives for that status (schema, content type, headers), and any status it does not list is a
 * failure. Generic provokers (400, 401, 403, 404, 413, 415, 429, 503) run on every operation
 * they apply to, so an operation answering such a status must document it; a realistic tenant
 * provides every success, 409 and 422. The document is read from the server, so a route or
 * status added later is held to it too, and a documented pair nothing provokes fails the test.
 */

/**
 * Pairs the document lists that no request here provokes, each with why. The test fails when
 * one is no longer documented, or is provoked after all: keep it short and honest.
 */
const NOT_PROVOKED: Record<string, string> = {};

/**
 * Statuses whose generic provoker may meet a document that does not list them yet: while no
 * /v2 operation documents one, its answers are checked (the status, the error body,
 * Retry-After) but not held to the document; once any does, every operation that answers it
 * must document it.
 */
const PENDING_STATUSES = [413, 415, 503];

/** Ids nothing in the database has: what the 404, 413, 415, 429 and 503 provokers name. */
const UNKNOWN: Record<string, string> = {
  client_id: 'conformance-nobody',
  domain_id: 'nowhere',
  service_id: 'no-service',
  model_id: 'conformance-no-model',
  version: '9.9.9',
  key: 'no-key',
  job_id: '999999999999',
  subscription_id: '2489e9ad-2ee2-4e00-8ec9-32d5f69181c0',
  batch_id: '5f0c2a8e-7d1b-4c3e-9a55-2b6f1d0e9c47',
  name: 'no-schedule',
};

/** Over the 64 KiB body limit of TestServer. */
const OVERSIZED = JSON.stringify({ input: { blob: 'x'.repeat(70_000) } });

const CLIENT = '/v2/clients/{client_id}';
const DOMAIN = `${CLIENT}/domains/{domain_id}`;
const SERVICE = `${DOMAIN}/services/{service_id}`;
const SERVICE_SCOPE = `${DOMAIN}/service/{service_id}`;
const MODEL = '/v2/models/{model_id}';
const VERSION = `${MODEL}/versions/{version}`;

const isApi = (operation: DocumentedOperation) => operation.path.startsWith('/v2/');
const hasParams = (operation: DocumentedOperation) => /\{\w+\}/.test(operation.path);

/** A body the operation accepts, naming made-up objects, so what the test varies decides. */
function anyBody(operation: DocumentedOperation): unknown {
  return validBody(
    { method: operation.method, path: operation.path, scope: operation.scope ?? 'admin' },
    { modelId: UNKNOWN['model_id']!, version: UNKNOWN['version']! },
  );
}

describeOnEachBackend(
  'OpenAPI conformance',
  (server) => {
    let conf: Conformance;
    /** A server that allows each client one request per 100 s, refused at once. */
    let limited: TestServer | undefined;

    before(async () => {
      conf = await Conformance.load(server());
      const backend = testBackends().find((each) => each.name === server().backend)!;
      limited = await TestServer.start(backend, undefined, undefined, {
        rateLimit: { rps: 0.01, burst: 1, holdMs: 0 },
      });
    });
    after(async () => {
      await limited?.close();
    });

    /** Fails the test with every problem found since the last call. */
    function assertConforms(t: TestContext) {
      const problems = conf.takeProblems();
      t.diagnostic(`${conf.covered.size} pairs covered so far`);
      assert.equal(problems.length, 0, `${problems.length} problems:\n${problems.join('\n')}`);
    }

    /** Whether some /v2 operation documents `status` (see PENDING_STATUSES). */
    const apiDocuments = (status: number) =>
      conf.operations.some((operation) => isApi(operation) && conf.documents(operation, status));

    /**
     * Sends a generic provoker's request for `status` to every operation it applies to, each
     * answer held to the document: an operation that answers the status must list it. For a
     * pending status no /v2 operation lists yet, the answer is checked without that (status,
     * error body, Retry-After), so the provoker is ready for when the document lists it.
     */
    async function provokeEverywhere(
      t: TestContext,
      status: number,
      applies: (operation: DocumentedOperation) => boolean,
      request: (operation: DocumentedOperation) => ConformanceRequest,
      via: TestServer = server(),
    ) {
      const pending = PENDING_STATUSES.includes(status) && !apiDocuments(status);
      let sent = 0;
      for (const operation of conf.operations) {
        if (!applies(operation)) continue;
        await conf.send(via, operation.key, {
          ...request(operation),
          expect: status,
          allowUndocumented: pending,
        });
        sent += 1;
      }
      t.diagnostic(`${status}: ${sent} operations${pending ? ' (status not yet documented)' : ''}`);
    }

    it('refuses what the document does not allow, with schemas inline or by $ref', async (t) => {
      // A real answer to hold up against the document: a client, as PUT creates it.
      const params = { client_id: uniqueId('conformance-check') };
      const created = await conf.send(server(), `PUT ${CLIENT}`, { params, body: {}, expect: 201 });
      const json = new Headers({ 'content-type': 'application/json; charset=utf-8' });
      const html = new Headers({ 'content-type': 'text/html' });
      const answer = (status: number, body: unknown, headers = json) => ({ status, headers, body });

      // While the document inlines the client schema, the same document with it named in
      // components.schemas, as it will be: the checker must resolve the $ref and judge the same.
      const checkers = [conf];
      const doc = structuredClone(conf.doc);
      const media = doc.paths[CLIENT]?.['get']?.['responses']?.['200']?.['content']?.[
        'application/json'
      ] as { schema?: Record<string, unknown> } | undefined;
      if (media?.schema !== undefined && media.schema['$ref'] === undefined) {
        doc.components = { ...doc.components, schemas: { ConformanceClient: media.schema } };
        media.schema = { $ref: '#/components/schemas/ConformanceClient' };
        checkers.push(Conformance.of(doc));
      }

      for (const checker of checkers) {
        const getClient = checker.operation(`GET ${CLIENT}`)!;
        const deleteSubscription = checker.operation(
          `DELETE ${DOMAIN}/subscriptions/{subscription_id}`,
        )!;
        assert.deepEqual(checker.problemsOf(getClient, { ...created, status: 200 }), []);
        const refused: [string, ApiResponse, DocumentedOperation, RegExp][] = [
          [
            'a body its schema refuses',
            answer(200, { client_id: 7 }),
            getClient,
            /does not match the 200 schema/,
          ],
          [
            'a status it does not list',
            answer(202, created.body),
            getClient,
            /status 202 is not documented/,
          ],
          [
            'an error without success: false',
            answer(404, { message: 'gone' }),
            getClient,
            /not \{success: false/,
          ],
          [
            'a 429 without Retry-After',
            answer(429, { success: false, message: 'slow' }),
            getClient,
            /no Retry-After/,
          ],
          [
            'an undocumented content type',
            answer(200, created.body, html),
            getClient,
            /content type "text\/html"/,
          ],
          [
            'a body where none is documented',
            answer(204, { deleted: true }),
            deleteSubscription,
            /no body, but one came/,
          ],
        ];
        for (const [what, response, operation, expected] of refused) {
          const problems = checker.problemsOf(operation, response);
          assert.ok(
            problems.some((problem) => expected.test(problem)),
            `${what}: ${problems.join('; ')}`,
          );
        }
      }
      assertConforms(t);
    });

    it('answers the generic 400, 401, 403 and 404 as documented on every route', async (t) => {
      await provokeEverywhere(t, 400, isApi, (operation) => {
        if (hasParams(operation)) {
          // The first path parameter is not an identifier (nor a job id, nor a uuid).
          const first = /\{(\w+)\}/.exec(operation.path)![1]!;
          return {
            params: { ...UNKNOWN, [first]: 'bad id!' },
            body: anyBody(operation),
            why: `invalid {${first}}`,
          };
        }
        if (operation.method === 'GET') return { query: 'limit=0', why: 'limit below 1' };
        return { rawBody: '[]', why: 'a body that is not an object' };
      });
      await provokeEverywhere(t, 401, isApi, (operation) => ({
        params: UNKNOWN,
        body: anyBody(operation),
        token: null,
        why: 'no token',
      }));
      const withoutScope = new Map<string, string>();
      for (const { scope } of conf.operations) {
        if (scope === undefined || withoutScope.has(scope)) continue;
        const others = SCOPES.filter((each) => each !== scope && each !== 'admin');
        withoutScope.set(scope, await server().token(others));
      }
      await provokeEverywhere(t, 403, isApi, (operation) => ({
        params: UNKNOWN,
        body: anyBody(operation),
        token: withoutScope.get(operation.scope ?? '') ?? null,
        why: `a token with every scope but ${operation.scope}`,
      }));
      await provokeEverywhere(
        t,
        404,
        // Under an unknown client or model; a PUT of the client or model itself creates it.
        (operation) =>
          /\{(client_id|model_id)\}/.test(operation.path) &&
          !(operation.method === 'PUT' && /\{(client_id|model_id)\}$/.test(operation.path)),
        (operation) => ({ params: UNKNOWN, body: anyBody(operation), why: 'an unknown client' }),
      );
      assertConforms(t);
    });

    it('answers 413 for a body over the limit and 415 for one that is not JSON', async (t) => {
      // Any request that can carry a body, whether or not the route reads one: the limit and
      // the parser are the app's, so depart, cancel or a DELETE answer these as well.
      const canCarryBody = (operation: DocumentedOperation) =>
        isApi(operation) && ['POST', 'PUT', 'PATCH', 'DELETE'].includes(operation.method);
      await provokeEverywhere(t, 413, canCarryBody, () => ({
        params: UNKNOWN,
        rawBody: OVERSIZED,
        why: `a ${OVERSIZED.length}-byte body`,
      }));
      await provokeEverywhere(t, 415, canCarryBody, () => ({
        params: UNKNOWN,
        rawBody: 'hello',
        headers: { 'content-type': 'text/plain' },
        why: 'content-type text/plain',
      }));
      assertConforms(t);
    });

    it('answers 429 with Retry-After on every route once the rate limit is spent', async (t) => {
      const via = limited!;
      // Each budget (the client in the path, else the token's subject) allows one request.
      await conf.send(via, `GET ${CLIENT}`, {
        params: UNKNOWN,
        expect: 404,
        why: 'spends the client budget',
      });
      await conf.send(via, 'GET /v2/models', { expect: 200, why: "spends the subject's budget" });
      await provokeEverywhere(
        t,
        429,
        isApi,
        (operation) => ({ params: UNKNOWN, body: anyBody(operation), why: 'budget spent' }),
        via,
      );
      assertConforms(t);
    });

    it('answers 503 with Retry-After on every route while the database is unreachable', async (t) => {
      await provokeEverywhere(
        t,
        503,
        (operation) => isApi(operation) || operation.path === '/readyz',
        (operation) => ({
          params: UNKNOWN,
          body: anyBody(operation),
          token: isApi(operation) ? undefined : null,
          why: 'database unreachable',
          around: (call) => server().whileDatabaseDown(call),
        }),
      );
      assertConforms(t);
    });

    it('answers every success, 409 and 422 of every route, on a realistic tenant', async (t) => {
      await walkThrough(conf, server());
      assertConforms(t);
    });

    it('provokes every documented pair, except the few NOT_PROVOKED says why not', (t) => {
      const documented = new Set(conf.documentedPairs());
      const stale = Object.keys(NOT_PROVOKED).filter(
        (pair) => !documented.has(pair) || conf.covered.has(pair),
      );
      assert.deepEqual(stale, [], 'NOT_PROVOKED entries no longer documented, or provoked');
      const missing = [...documented].filter(
        (pair) => !conf.covered.has(pair) && !(pair in NOT_PROVOKED),
      );
      assert.deepEqual(missing, [], 'documented pairs no request provoked');
      t.diagnostic(`${documented.size} documented pairs, ${conf.covered.size} provoked`);
    });
  },
  undefined,
  undefined,
  { outageSwitch: true },
);

/**
 * A tenant built as the README walks through it (client, domain, services, a model version
 * for pull workers, assignments, jobs, a batch, completions, a subscription, a schedule), and
 * on the way the request that yields each success, 409 and 422 the routes document. Every
 * request goes through `conf`, so each answer is checked against the document.
 */
async function walkThrough(conf: Conformance, server: TestServer) {
  const send = (key: string, request: ConformanceRequest) => conf.send(server, key, request);
  const must = <T = any>(key: string, request: ConformanceRequest & { expect: number }) =>
    conf.must<T>(server, key, request);

  const clientId = uniqueId('conformance');
  const modelId = uniqueId('conformance-model');
  const version = '1.0.0';
  const base = {
    client_id: clientId,
    domain_id: 'main',
    service_id: 'service-1',
    model_id: modelId,
    version,
    key: 'default',
  };
  const at = (params: Record<string, string> = {}) => ({ ...base, ...params });
  const assignment = { model_id: modelId, model_version: version };
  const ghostVersion = { model_id: modelId, model_version: '9.9.9' };

  // Operations outside /v2.
  for (const path of ['/healthz', '/readyz', '/metrics']) {
    await send(`GET ${path}`, { token: null, expect: 200, why: 'up and ready' });
  }

  // Tenants: created (201), then written again (200).
  for (const expect of [201, 200]) {
    await send(`PUT ${CLIENT}`, { params: at(), body: { name: 'Conformance' }, expect });
    await send(`PUT ${DOMAIN}`, { params: at(), body: {}, expect });
  }
  await send(`PUT ${DOMAIN}`, {
    params: at({ domain_id: 'bare' }),
    body: {},
    expect: 201,
    why: 'a domain with no assignment',
  });
  await send(`GET ${CLIENT}`, { params: at(), expect: 200 });
  await send('GET /v2/clients', { expect: 200 });
  await send(`GET ${DOMAIN}`, { params: at(), expect: 200 });
  await send(`GET ${CLIENT}/domains`, { params: at(), expect: 200 });

  // The registry: a model, and a version for pull workers with a contract.
  const contract = { features: ROUTE_CONTRACT, job_types: ['inference', 'training'] };
  for (const expect of [201, 200]) {
    await send(`PUT ${MODEL}`, {
      params: at(),
      body: { description: 'Conformance model' },
      expect,
    });
    await send(`PUT ${VERSION}`, { params: at(), body: contract, expect });
  }
  await send(`PUT ${VERSION}`, {
    params: at(),
    body: { ...contract, features: [{ name: 'other', type: 'string' }] },
    expect: 409,
    why: 'another contract for an existing version',
  });
  await send(`PUT ${VERSION}`, {
    params: at({ version: '2.0.0' }),
    body: { features: [{ name: 'colour', type: 'color' }] },
    expect: 422,
    why: 'a feature of an unknown type',
  });
  await send(`GET ${MODEL}`, { params: at(), expect: 200 });
  await send('GET /v2/models', { expect: 200 });
  await send(`GET ${VERSION}`, { params: at(), expect: 200 });
  await send(`GET ${MODEL}/versions`, { params: at(), expect: 200 });

  // Services, before any default: created, then updated.
  for (const [serviceId, route] of [
    ['service-1', 'r1'],
    ['service-2', 'r2'],
  ] as const) {
    const body = { provided_features: { route } };
    await send(`PUT ${SERVICE}`, { params: at({ service_id: serviceId }), body, expect: 201 });
  }
  await send(`PUT ${SERVICE}`, {
    params: at(),
    body: { provided_features: { route: 'r1', capacity: 10 } },
    expect: 200,
  });

  // Domain assignments: the default and a second key, by PUT and by POST.
  for (const expect of [201, 200]) {
    await send(`PUT ${DOMAIN}/assignments/{key}`, { params: at(), body: assignment, expect });
    await send(`POST ${DOMAIN}/assignments`, {
      params: at(),
      body: { ...assignment, key: 'domain-key' },
      expect,
    });
  }
  await send(`PUT ${DOMAIN}/assignments/{key}`, {
    params: at({ key: 'ghost' }),
    body: ghostVersion,
    expect: 422,
    why: 'a version that does not exist',
  });
  await send(`POST ${DOMAIN}/assignments`, {
    params: at(),
    body: { ...ghostVersion, key: 'ghost' },
    expect: 422,
    why: 'a version that does not exist',
  });
  // With the default in place, a service must satisfy its contract.
  await send(`PUT ${SERVICE}`, {
    params: at({ service_id: 'service-3' }),
    body: { provided_features: {} },
    expect: 422,
    why: 'a service without the required feature "route"',
  });

  // Service assignments.
  for (const expect of [201, 200]) {
    await send(`PUT ${SERVICE_SCOPE}/assignments/{key}`, {
      params: at({ key: 'svc-key' }),
      body: assignment,
      expect,
    });
    await send(`POST ${SERVICE_SCOPE}/assignments`, {
      params: at(),
      body: { ...assignment, key: 'svc-key-2' },
      expect,
    });
  }
  await send(`PUT ${SERVICE_SCOPE}/assignments/{key}`, {
    params: at({ key: 'ghost' }),
    body: ghostVersion,
    expect: 422,
    why: 'a version that does not exist',
  });
  await send(`POST ${SERVICE_SCOPE}/assignments`, {
    params: at(),
    body: { ...ghostVersion, key: 'ghost' },
    expect: 422,
    why: 'a version that does not exist',
  });
  for (const [scope, key] of [
    [DOMAIN, 'domain-key'],
    [SERVICE_SCOPE, 'svc-key'],
  ] as const) {
    await send(`GET ${scope}/assignments`, { params: at(), expect: 200 });
    await send(`GET ${scope}/assignments/{key}`, { params: at({ key }), expect: 200 });
    await send(`GET ${scope}/assignments/{key}/revisions`, { params: at({ key }), expect: 200 });
  }

  /**
   * A 409 every route taking an Idempotency-Key documents: the same key again while the first
   * request is in flight. A claimed key without an answer is what a request still running (in
   * this or another process) leaves behind.
   */
  async function inFlight(key: string, request: ConformanceRequest & { expect: number }) {
    const idempotencyKey = uniqueId('in-flight');
    const headers = { 'idempotency-key': idempotencyKey };
    await must(key, { ...request, headers, why: 'the first request with a key' });
    await server.db.query(
      `update idempotency_keys set status_code = null, response = null
       where client_id = $1 and key = $2`,
      [clientId, idempotencyKey],
    );
    await send(key, { ...request, headers, expect: 409, why: 'its key still in flight' });
  }

  // Jobs through a service's assignment and a domain's.
  const runService = `POST ${SERVICE_SCOPE}/assignments/{key}/jobs`;
  const runDomain = `POST ${DOMAIN}/assignments/{key}/jobs`;
  const run = async (input: Record<string, unknown>, jobType = 'inference') =>
    (
      await must<{ job_id: string }>(runService, {
        params: at(),
        body: { input, job_type: jobType },
        expect: 202,
      })
    ).job_id;
  const toComplete = await run({ n: 1 });
  const toFail = await run({ n: 2 });
  const toCancel = await run({ n: 3 });
  const toFire = await run({ n: 4 });
  await run({ n: 5 }, 'training');
  await send(runDomain, { params: at({ key: 'domain-key' }), body: {}, expect: 202 });
  await inFlight(runService, { params: at(), body: { input: { n: 6 } }, expect: 202 });
  await inFlight(runDomain, { params: at({ key: 'domain-key' }), body: {}, expect: 202 });
  for (const operation of [runService, runDomain]) {
    await send(operation, {
      params: at({ key: 'nowhere' }),
      body: {},
      expect: 422,
      why: 'no active assignment for the key',
    });
  }

  // Services init.
  const init = `POST ${DOMAIN}/services/init`;
  await send(init, { params: at(), expect: 202 });
  await inFlight(init, { params: at(), expect: 202 });
  await send(init, {
    params: at({ domain_id: 'bare' }),
    expect: 422,
    why: 'a domain without a default assignment',
  });

  // A batch.
  const startBatch = `POST ${DOMAIN}/jobs/batch`;
  const batchBody = { assignment_key: 'default', jobs: [{ service_id: 'service-2' }] };
  const batch = await must<{ batch_id: string }>(startBatch, {
    params: at(),
    body: batchBody,
    expect: 202,
  });
  await inFlight(startBatch, { params: at(), body: batchBody, expect: 202 });
  await send(startBatch, {
    params: at(),
    body: { ...batchBody, assignment_key: 'nowhere' },
    expect: 422,
    why: 'no active assignment for the key',
  });
  await send(`GET ${DOMAIN}/batches`, { params: at(), expect: 200 });
  await send(`GET ${DOMAIN}/batches/{batch_id}`, {
    params: at({ batch_id: batch.batch_id }),
    expect: 200,
  });
  await send(`GET ${DOMAIN}/jobs`, { params: at(), expect: 200 });
  await send(`GET ${DOMAIN}/jobs/{job_id}`, { params: at({ job_id: toComplete }), expect: 200 });
  await send(`GET ${DOMAIN}/jobs/{job_id}/events`, {
    params: at({ job_id: toComplete }),
    expect: 200,
    why: 'the changes of a queued job so far',
  });
  // The event stream never ends by itself: its answer is what arrived in its first moments.
  await send(`GET ${DOMAIN}/events`, {
    params: at(),
    query: 'last_event_id=0',
    expect: 200,
    why: 'the domain history so far, then live',
    around: () =>
      firstMomentsOfStream(
        `${server.url}/v2/clients/${clientId}/domains/main/events?last_event_id=0`,
        server.adminToken,
      ),
  });

  // Jobs by status and the last hour, of the domain and of the whole client.
  await send(`GET ${DOMAIN}/stats`, { params: at(), expect: 200 });
  await send(`GET ${CLIENT}/stats`, { params: at(), expect: 200 });

  // Completion by the model handler, and cancelling.
  const complete = `POST ${VERSION}/jobs/{job_id}/complete`;
  const cancel = `POST ${DOMAIN}/jobs/{job_id}/cancel`;
  await send(complete, {
    params: at({ job_id: toComplete }),
    body: { status: 'success', output: { score: 1 } },
    expect: 200,
  });
  await send(complete, {
    params: at({ job_id: toComplete }),
    body: { status: 'failure' },
    expect: 409,
    why: 'a different completion of a completed job',
  });
  await send(complete, {
    params: at({ job_id: toFail }),
    body: { status: 'failure', error: { code: 'bad_weights', message: 'NaN' } },
    expect: 200,
  });
  await send(cancel, { params: at({ job_id: toCancel }), expect: 200 });
  await send(cancel, {
    params: at({ job_id: toComplete }),
    expect: 409,
    why: 'a job already finished',
  });

  // Redrive: one failed job, every failed job, and a bulk cancel.
  const retryOne = `POST ${DOMAIN}/jobs/{job_id}/retry`;
  const retryMany = `POST ${DOMAIN}/jobs/retry`;
  const cancelMany = `POST ${DOMAIN}/jobs/cancel`;
  await send(retryOne, { params: at({ job_id: toFail }), expect: 202 });
  await inFlight(retryOne, { params: at({ job_id: toCancel }), expect: 202 });
  await send(retryOne, {
    params: at({ job_id: toFire }),
    expect: 409,
    why: 'a queued job is not retried',
  });
  await send(retryMany, { params: at(), body: { error_code: 'bad_weights' }, expect: 202 });
  await inFlight(retryMany, { params: at(), body: { status: 'cancelled' }, expect: 202 });
  await send(cancelMany, { params: at(), body: { job_type: 'training' }, expect: 200 });
  await inFlight(cancelMany, { params: at(), body: { job_type: 'training' }, expect: 200 });
  const reused = uniqueId('reused');
  await must(cancelMany, {
    params: at(),
    body: { job_type: 'training' },
    headers: { 'idempotency-key': reused },
    expect: 200,
  });
  await send(cancelMany, {
    params: at(),
    body: { job_type: 'training', limit: 1 },
    headers: { 'idempotency-key': reused },
    expect: 422,
    why: 'an Idempotency-Key used for a different request',
  });
  // Nothing starts in an inactive domain.
  await send(`PUT ${DOMAIN}`, { params: at(), body: { status: 'inactive' }, expect: 200 });
  await send(retryOne, {
    params: at({ job_id: toFail }),
    expect: 422,
    why: 'the domain is inactive',
  });
  await send(retryMany, { params: at(), body: {}, expect: 422, why: 'the domain is inactive' });
  await send(`PUT ${DOMAIN}`, { params: at(), body: { status: 'active' }, expect: 200 });

  // A pull worker claims a job and keeps its lease.
  const claimed = await must<{ jobs: { job_id: string; attempt: number }[] }>(
    `POST ${VERSION}/jobs/claim`,
    { params: at(), body: { worker_id: 'conformance-worker', wait_ms: 0 }, expect: 200 },
  );
  const job = claimed.jobs[0];
  assert.ok(job, 'a queued job was claimed');
  // Completions of several jobs at once: each result is the single route's answer.
  const many = await must<{ results: { job_id: string; status_code: number }[] }>(
    `POST ${VERSION}/jobs/complete`,
    {
      params: at(),
      body: {
        completions: [
          { job_id: job.job_id, attempt: job.attempt + 1, status: 'success' },
          { job_id: UNKNOWN['job_id'], status: 'failure', error: { code: 'x' } },
        ],
      },
      expect: 200,
    },
  );
  assert.deepEqual(
    many.results.map((result) => result.status_code),
    [409, 404],
  );
  await send(`POST ${VERSION}/jobs/complete`, {
    params: at(),
    body: {
      completions: [
        { job_id: job.job_id, status: 'success' },
        { job_id: job.job_id, status: 'failure' },
      ],
    },
    expect: 400,
    why: 'a job named twice',
  });
  const heartbeat = `POST ${VERSION}/jobs/{job_id}/heartbeat`;
  await send(heartbeat, {
    params: at({ job_id: job.job_id }),
    body: { attempt: job.attempt, status: 'running' },
    expect: 200,
  });
  await send(heartbeat, {
    params: at({ job_id: job.job_id }),
    body: { attempt: job.attempt + 1 },
    expect: 409,
    why: 'a stale attempt',
  });

  // A subscription whose action cannot start: the completion that fires it is a 207.
  const subscriptions = `${DOMAIN}/subscriptions`;
  const subscription = await must<{ subscription_id: string }>(`POST ${subscriptions}`, {
    params: at(),
    body: {
      source: { model_id: modelId },
      action: { assignment_key: 'nowhere', job_type: 'inference' },
    },
    expect: 201,
  });
  await send(`POST ${subscriptions}`, {
    params: at(),
    body: {
      source: { model_id: UNKNOWN['model_id'] },
      action: { assignment_key: 'default', job_type: 'training' },
    },
    expect: 422,
    why: 'an unknown source model',
  });
  await send(complete, {
    params: at({ job_id: toFire }),
    body: { status: 'success' },
    expect: 207,
    why: 'a subscription that cannot start its job',
  });
  const one = at({ subscription_id: subscription.subscription_id });
  await send(`GET ${subscriptions}`, { params: at(), expect: 200 });
  await send(`GET ${subscriptions}/{subscription_id}`, { params: one, expect: 200 });
  await send(`POST ${subscriptions}/{subscription_id}/pause`, { params: one, expect: 200 });
  await send(`POST ${subscriptions}/{subscription_id}/resume`, { params: one, expect: 200 });
  await send(`DELETE ${subscriptions}/{subscription_id}`, { params: one, expect: 204 });

  // A schedule.
  const schedule = `${DOMAIN}/schedules/{name}`;
  const nightly = { cron: '0 0 1 1 *', action: { type: 'services_init' } };
  for (const expect of [201, 200]) {
    await send(`PUT ${schedule}`, { params: at({ name: 'nightly' }), body: nightly, expect });
  }
  await send(`PUT ${schedule}`, {
    params: at({ name: 'stray' }),
    body: {
      ...nightly,
      action: { type: 'run_job', assignment_key: 'default', service_id: 'nobody' },
    },
    expect: 422,
    why: 'an action service the domain does not have',
  });
  await send(`GET ${DOMAIN}/schedules`, { params: at(), expect: 200 });
  await send(`GET ${schedule}`, { params: at({ name: 'nightly' }), expect: 200 });
  await send(`DELETE ${schedule}`, { params: at({ name: 'nightly' }), expect: 204 });

  // Last, a service departs.
  await send(`POST ${SERVICE}/depart`, { params: at({ service_id: 'service-2' }), expect: 200 });
  await send(`GET ${SERVICE}`, { params: at({ service_id: 'service-2' }), expect: 200 });
  await send(`GET ${DOMAIN}/services`, { params: at(), expect: 200 });
}

/** The status, headers and the text that arrived within half a second, then the stream closed. */
async function firstMomentsOfStream(url: string, token: string): Promise<ApiResponse> {
  const abort = new AbortController();
  const response = await fetch(url, {
    headers: { authorization: `Bearer ${token}` },
    signal: abort.signal,
  });
  let text = '';
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  const stop = setTimeout(() => abort.abort(), 500);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } catch {
    // aborted: the half second is over
  } finally {
    clearTimeout(stop);
  }
  return { status: response.status, headers: response.headers, body: text };
}
