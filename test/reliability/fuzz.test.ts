import assert from 'node:assert/strict';
import { it } from 'node:test';
import fc from 'fast-check';
import { Pool } from 'undici';
import { base64urlJson } from '../helpers/encoding.js';
import {
  answerChecker,
  bodyCases,
  garbageSegment,
  operationsOf,
  validValue,
  type FuzzOperation,
  type FuzzRequest,
  type Hints,
  type OpenApiDoc,
  type Schema,
} from '../helpers/openapi-fuzz.js';
import { seedTenant, type SeededTenant } from '../helpers/seeded-tenant.js';
import { describeOnEachBackend, type TestServer } from '../helpers/test-server.js';

/**
 * Every operation of the served /openapi.json, hit with requests fast-check derives from the
 * document: seeded ids and garbage in the path (unicode, very long, NUL, `..`, bad escapes),
 * valid and invalid query strings and Idempotency-Keys, and bodies from the request schema,
 * valid or broken in one way. Tokens vary from admin to none. Every answer must be below 500,
 * documented for the operation, `{success: false, message}` when an error, and valid against
 * the documented schema for its status.
 *
 * The seed is random per run and printed; set PIE_FUZZ_SEED to replay one.
 */
const MIN_REQUESTS = 5_000;
const CONCURRENCY = 4;
const SEED = Number(process.env['PIE_FUZZ_SEED'] ?? Math.floor(Math.random() * 2 ** 31));

interface Tokens {
  admin: string;
  /** Every scope but admin, for the seeded client and model only. */
  tenant: string;
  read: string;
  /** Admin, but for another client and model: 403 on their paths. */
  otherClient: string;
}

function hintsFor(tenant: SeededTenant): Hints {
  const jobs = [...tenant.queuedJobs, tenant.completedJob, tenant.cancelledJob];
  return {
    strings: {
      client_id: [tenant.clientId],
      domain_id: [tenant.domainId],
      service_id: tenant.services,
      model_id: [tenant.modelId],
      version: [tenant.version],
      model_version: [tenant.version],
      key: tenant.keys,
      assignment_key: tenant.keys,
      job_id: jobs,
      subscription_id: [tenant.subscriptionId],
      job_type: ['inference', 'training'],
      worker_id: ['fuzz-worker'],
      // Schedules: patterns and zones that pass, so that bodies reach the writes and ticks.
      cron: ['30 2 * * *', '* * * * * *', '0 0 30 2 *'],
      timezone: ['UTC', 'Australia/Adelaide'],
    },
    // A claim waits up to wait_ms for a job; keep the valid ones short.
    integers: { wait_ms: { min: 0, max: 20 } },
    arbitraries: { cursor: cursorLike(jobs, tenant.subscriptionId) },
  };
}

/**
 * Cursors that decode (base64url JSON lists of strings, as PIE writes them) but carry keys that
 * may not cast: real ids and times beside garbage, NUL, huge and empty text.
 */
function cursorLike(jobs: string[], subscriptionId: string) {
  const id = fc.oneof(
    fc.constantFrom(...jobs, subscriptionId, 'default', 'service-1', ''),
    fc.uuid(),
    fc.string({ unit: 'binary', maxLength: 40 }),
  );
  const time = fc.oneof(
    fc.date({ noInvalidDate: true }).map((date) => date.toISOString()),
    fc.constantFrom(
      '2024-13-45T99:99:99Z',
      '2024-02-30T00:00:00.000Z',
      '0000-01-01T00:00:00.000Z',
      '9999-12-31T23:59:59.999Z',
      'infinity',
      'epoch',
      '1e400',
      '\u0000',
    ),
  );
  // PIE's cursors hold one key (an id) or two (a time, then an id).
  return fc
    .oneof(
      { weight: 4, arbitrary: fc.tuple(time, id) },
      { weight: 2, arbitrary: fc.tuple(id) },
      { weight: 1, arbitrary: fc.array(fc.oneof(time, id), { maxLength: 4 }) },
      { weight: 1, arbitrary: fc.constantFrom<unknown>([1, 2], {}, null, [[]]) },
    )
    .map((key) => base64urlJson(key));
}

function pathCase(doc: OpenApiDoc, op: FuzzOperation, hints: Hints) {
  const names = [...op.path.matchAll(/\{(\w+)\}/g)].map((match) => match[1]!);
  const schemaOf = (name: string) =>
    op.operation.parameters?.find((p) => p.in === 'path' && p.name === name)?.schema ?? {};
  const segment = (name: string) =>
    fc.oneof(
      {
        // Mostly seeded ids, so that most requests reach the route's own code.
        weight: 10,
        arbitrary: validValue(doc, schemaOf(name), hints, name).map((value) => ({
          raw: encodeURIComponent(String(value)),
          note: '',
        })),
      },
      {
        weight: 1,
        arbitrary: validValue(doc, schemaOf(name), { strings: {}, integers: {} }).map((value) => ({
          raw: encodeURIComponent(String(value)),
          note: `random ${name}`,
        })),
      },
      {
        weight: 1,
        arbitrary: garbageSegment.map(({ raw, note }) => ({ raw, note: `${name}: ${note}` })),
      },
    );
  return fc.tuple(...names.map(segment)).map((segments) => {
    let index = 0;
    const path = op.path.replace(/\{(\w+)\}/g, () => segments[index++]!.raw);
    const notes = segments.map((s) => s.note).filter((note) => note !== '');
    return { path, notes };
  });
}

function queryCase(doc: OpenApiDoc, op: FuzzOperation, hints: Hints) {
  const params = (op.operation.parameters ?? []).filter((p) => p.in === 'query');
  const one = (name: string, schema: Schema) =>
    fc.option(
      fc.oneof(
        {
          weight: 3,
          arbitrary: validValue(doc, schema, hints, name).map(
            (value) => `${name}=${encodeURIComponent(String(value))}`,
          ),
        },
        {
          weight: 1,
          arbitrary: fc
            .oneof(
              fc.constantFrom('0', '-1', '501', '1.5', '1e400', 'NaN', '', '%00', '%zz', 'true'),
              fc.string({ unit: 'binary', maxLength: 30 }).map(encodeURIComponent),
              fc.integer({ min: 1025, max: 3000 }).map((n) => 'x'.repeat(n)),
            )
            .map((raw) => `${name}=${raw}`),
        },
        {
          weight: 1,
          arbitrary: fc
            .tuple(validValue(doc, schema, hints, name), validValue(doc, schema, hints, name))
            .map(
              ([a, b]) =>
                `${name}=${encodeURIComponent(String(a))}&${name}=${encodeURIComponent(String(b))}`,
            ),
        },
      ),
      { freq: 2 },
    );
  const extras = fc.option(
    fc.constantFrom('client_id=someone-else', 'unknown=1', '__proto__=x', 'limit[]=1', 'a=%00'),
    { freq: 4 },
  );
  return fc
    .tuple(fc.tuple(...params.map((p) => one(p.name, p.schema))), extras)
    .map(([values, extra]) => {
      const parts = [...values, extra].filter((part): part is string => part !== null);
      return parts.length === 0 ? '' : `?${parts.join('&')}`;
    });
}

function headerCase(op: FuzzOperation) {
  const documented = (op.operation.parameters ?? []).some(
    (p) => p.in === 'header' && p.name === 'idempotency-key',
  );
  if (!documented) return fc.constant<Record<string, string>>({});
  return fc
    .option(
      fc.oneof(
        fc.uuid(),
        fc.constantFrom('fuzz-key-1', 'fuzz-key-2'),
        fc.constantFrom('', ' ', 'has space', 'k'.repeat(256), 'caf\u00e9', '\u00ff\u00fe'),
      ),
      { freq: 2 },
    )
    .map((key): Record<string, string> => (key === null ? {} : { 'idempotency-key': key }));
}

function requestCase(
  doc: OpenApiDoc,
  op: FuzzOperation,
  hints: Hints,
  tokens: Tokens,
): fc.Arbitrary<FuzzRequest> {
  const token = op.path.startsWith('/v2/')
    ? fc.oneof(
        { weight: 8, arbitrary: fc.constant({ value: tokens.admin, note: '' }) },
        { weight: 4, arbitrary: fc.constant({ value: tokens.tenant, note: 'tenant token' }) },
        { weight: 1, arbitrary: fc.constant({ value: tokens.read, note: 'read token' }) },
        { weight: 1, arbitrary: fc.constant({ value: tokens.otherClient, note: 'other client' }) },
        { weight: 1, arbitrary: fc.constant({ value: null, note: 'no token' }) },
      )
    : fc.constant({ value: null, note: '' });
  const schema = op.operation.requestBody?.content?.['application/json']?.schema;
  const body =
    schema !== undefined
      ? fc.option(bodyCases(doc, schema, hints), { freq: 12 })
      : op.method === 'GET'
        ? fc.constant(null)
        : fc.option(
            fc.constantFrom(
              { text: '{}', note: 'empty object' },
              { text: '{"x": 1}', note: 'body where none is documented' },
            ),
            { freq: 2 },
          );
  return fc
    .tuple(pathCase(doc, op, hints), queryCase(doc, op, hints), headerCase(op), token, body)
    .map(([path, query, headers, tokenCase, bodyCase]) => {
      const all: Record<string, string> = { ...headers };
      if (tokenCase.value !== null) all['authorization'] = `Bearer ${tokenCase.value}`;
      if (bodyCase !== null) all['content-type'] = 'application/json';
      const notes = [...path.notes, tokenCase.note, bodyCase?.note ?? 'no body'];
      return {
        method: op.method,
        path: path.path + query,
        headers: all,
        body: bodyCase?.text,
        label: notes.filter((note) => note !== '').join(', '),
      };
    });
}

/**
 * Requests that once broke PIE, sent on every run whatever the seed: the random search finds
 * such corners only now and then.
 */
function knownTraps(tenant: SeededTenant, admin: string): Omit<FuzzRequest, 'label'>[] {
  const json = { authorization: `Bearer ${admin}`, 'content-type': 'application/json' };
  const get = (path: string) => ({
    method: 'GET',
    path,
    headers: { authorization: json.authorization },
  });
  const post = (path: string, body: string) => ({ method: 'POST', path, headers: json, body });
  const job = tenant.queuedJobs[0]!;
  const version = `/v2/models/${tenant.modelId}/versions/${tenant.version}`;
  return [
    // Cursor times PostgreSQL cannot cast: month 13, year 0 (JavaScript has one, PostgreSQL not).
    get(`${tenant.domainPath}/jobs?cursor=${base64urlJson(['2024-13-45T99:99:99Z', job])}`),
    get(`${tenant.domainPath}/jobs?cursor=${base64urlJson(['0000-01-01T00:00:00.000Z', job])}`),
    get(`${tenant.domainPath}/jobs?cursor=${base64urlJson([job, job])}`),
    get(
      `${tenant.domainPath}/subscriptions?cursor=${base64urlJson(['0000-01-01T00:00:00.000Z', tenant.subscriptionId])}`,
    ),
    // Attempts past PostgreSQL's integer range.
    post(`${version}/jobs/${job}/heartbeat`, '{"attempt": 1.7976931348623157e308}'),
    post(`${version}/jobs/${job}/heartbeat`, '{"attempt": 2147483648}'),
    post(`${version}/jobs/${job}/complete`, '{"status": "success", "attempt": 1e300}'),
    // Unpaired surrogates in free-form JSON, which PostgreSQL's json input refuses.
    post(
      `${tenant.domainPath}/service/service-1/assignments/default/jobs`,
      '{"input": {"a": "\\ud800"}}',
    ),
    {
      method: 'PUT',
      path: `${tenant.domainPath}/services/service-2`,
      headers: json,
      body: '{"provided_features": {"route": "r2", "\\udfff": 1}}',
    },
    // Paths the router refuses before any route: a bad escape, an over-long parameter.
    get(`/v2/clients/%zz`),
    get(`/v2/clients/${tenant.clientId}/domains/%E0%A4%A`),
    get(`/v2/clients/${'a'.repeat(2000)}`),
  ];
}

interface Failure {
  request: FuzzRequest;
  status: number;
  problems: string[];
}

async function send(client: Pool, request: FuzzRequest) {
  const response = await client.request({
    method: request.method as 'GET',
    path: request.path,
    headers: request.headers,
    body: request.body,
    headersTimeout: 15_000,
    bodyTimeout: 15_000,
  });
  const header = response.headers['content-type'];
  const contentType = typeof header === 'string' ? header : '';
  // An event stream never ends: its status and content type are the answer.
  if (contentType.startsWith('text/event-stream')) {
    response.body.on('error', () => undefined).destroy();
    return { status: response.statusCode, contentType, text: '' };
  }
  return { status: response.statusCode, contentType, text: await response.body.text() };
}

async function tokensFor(server: TestServer, tenant: SeededTenant): Promise<Tokens> {
  return {
    admin: server.adminToken,
    tenant: await server.token(
      [
        'read',
        'registry:write',
        'tenants:write',
        'assignments:write',
        'jobs:write',
        'jobs:complete',
      ],
      { clients: [tenant.clientId], models: [tenant.modelId] },
    ),
    read: await server.token(['read'], { clients: [tenant.clientId], models: [tenant.modelId] }),
    otherClient: await server.token(['admin'], {
      clients: ['other-client'],
      models: ['other-model'],
    }),
  };
}

describeOnEachBackend('fuzzing every operation of /openapi.json', (server) => {
  it(`answers ${MIN_REQUESTS}+ generated requests without a 5xx, each as documented`, async (t) => {
    t.diagnostic(`seed ${SEED} (replay with PIE_FUZZ_SEED=${SEED})`);
    const tenant = await seedTenant(server());
    const doc = (await server().get('/openapi.json', { token: null })).body as OpenApiDoc;
    const operations = operationsOf(doc);
    assert.ok(operations.length >= 40, `only ${operations.length} operations documented`);
    const hints = hintsFor(tenant);
    const tokens = await tokensFor(server(), tenant);
    const check = answerChecker(doc);
    const runs = Math.ceil(MIN_REQUESTS / operations.length);

    const operationOf = (method: string, path: string) => {
      const template = operations.find(
        (op) =>
          op.method === method &&
          new RegExp(`^${op.path.replace(/\{\w+\}/g, '[^/]+')}$`).test(path.split('?')[0]!),
      );
      if (template === undefined) throw new Error(`no operation for ${method} ${path}`);
      return template;
    };
    const traps = knownTraps(tenant, tokens.admin).map((request) => ({
      op: operationOf(request.method, request.path),
      request: { ...request, label: 'known trap' },
    }));
    const queue: { op: FuzzOperation; request: FuzzRequest }[] = operations.flatMap((op, index) =>
      fc
        .sample(requestCase(doc, op, hints, tokens), { numRuns: runs, seed: SEED + index })
        .map((request) => ({ op, request })),
    );
    // Interleave operations, so concurrent requests touch different routes at once.
    queue.sort(
      (a, b) => hash(a.request.label + a.request.path) - hash(b.request.label + b.request.path),
    );
    queue.unshift(...traps);

    const client = new Pool(server().url, { connections: CONCURRENCY });
    const failures: Failure[] = [];
    const statuses = new Map<number, number>();
    const reached = new Map<string, number>();
    let sent = 0;
    const started = performance.now();
    const sendAll = async (batch: typeof queue) => {
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < batch.length) {
            const { op, request } = batch[next++]!;
            const answer = await send(client, request);
            sent += 1;
            statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
            // Past auth and validation: the request reached the route's own code.
            if (![400, 401, 403].includes(answer.status)) {
              const key = `${op.method} ${op.path}`;
              reached.set(key, (reached.get(key) ?? 0) + 1);
            }
            const problems = check(op, answer);
            if (problems.length > 0) failures.push({ request, status: answer.status, problems });
          }
        }),
      );
    };
    const unreachedOperations = () =>
      operations.filter((op) => (reached.get(`${op.method} ${op.path}`) ?? 0) === 0);
    try {
      await sendAll(queue);
      // Some bodies pass validation only in few combinations (a subscription's event, source
      // and action must agree, a rule the schema cannot state), so a seed's share of one
      // operation may all stop at a 400. Such operations get more samples, from further seeds,
      // before the check below: it then fails only for a generator that (almost) never gets
      // through, not for an unlucky seed (one in about twenty runs did).
      for (let round = 1; round <= 3 && unreachedOperations().length > 0; round++) {
        await sendAll(
          unreachedOperations().flatMap((op) =>
            fc
              .sample(requestCase(doc, op, hints, tokens), {
                numRuns: runs * 2,
                seed: SEED + operations.indexOf(op) + round * 100_003,
              })
              .map((request) => ({ op, request })),
          ),
        );
      }
    } finally {
      await client.close();
    }
    const seconds = (performance.now() - started) / 1000;
    t.diagnostic(
      `${sent} requests in ${seconds.toFixed(1)} s; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`,
    );

    assert.ok(sent >= MIN_REQUESTS, `only ${sent} requests sent`);
    const distinct = new Map<string, Failure>();
    for (const failure of failures) {
      const key = `${failure.request.method} ${failure.status} ${failure.problems.join(' | ').slice(0, 80)}`;
      if (!distinct.has(key)) distinct.set(key, failure);
    }
    assert.deepEqual(
      [...distinct.values()].slice(0, 20).map((f) => ({
        request: `${f.request.method} ${f.request.path.slice(0, 300)}`,
        label: f.request.label,
        body: f.request.body?.slice(0, 300),
        status: f.status,
        problems: f.problems,
      })),
      [],
      `${failures.length} of ${sent} answers broke the contract (seed ${SEED})`,
    );
    // The generators must get past the gates, or the fuzzer tests only validation.
    assert.deepEqual(
      unreachedOperations().map((op) => `${op.method} ${op.path}`),
      [],
      'operations no request got past validation and auth',
    );
  });
});

function hash(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i += 1) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
  return h >>> 0;
}
