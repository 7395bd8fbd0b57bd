import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createConfig, lintFromString } from '@redocly/openapi-core';
import { readSeedCurl } from '../helpers/seed-curls.js';
import { describeOnEachBackend } from '../helpers/test-server.js';

/** Every route built so far; the document must list exactly these. */
const EXPECTED_OPERATIONS = [
  'GET /healthz',
  'GET /readyz',
  'GET /metrics',
  'POST /v2/models/{model_id}/versions/{version}/jobs/claim',
  'POST /v2/models/{model_id}/versions/{version}/jobs/complete',
  'POST /v2/models/{model_id}/versions/{version}/jobs/{job_id}/heartbeat',
  'GET /v2/clients',
  'GET /v2/clients/{client_id}',
  'PUT /v2/clients/{client_id}',
  'GET /v2/clients/{client_id}/domains',
  'GET /v2/clients/{client_id}/domains/{domain_id}',
  'PUT /v2/clients/{client_id}/domains/{domain_id}',
  'GET /v2/clients/{client_id}/domains/{domain_id}/services',
  'GET /v2/clients/{client_id}/domains/{domain_id}/services/{service_id}',
  'PUT /v2/clients/{client_id}/domains/{domain_id}/services/{service_id}',
  'POST /v2/clients/{client_id}/domains/{domain_id}/services/{service_id}/depart',
  'GET /v2/models',
  'GET /v2/models/{model_id}',
  'PUT /v2/models/{model_id}',
  'GET /v2/models/{model_id}/versions',
  'GET /v2/models/{model_id}/versions/{version}',
  'PUT /v2/models/{model_id}/versions/{version}',
  'POST /v2/models/{model_id}/versions/{version}/jobs/{job_id}/complete',
  'GET /v2/clients/{client_id}/domains/{domain_id}/assignments',
  'POST /v2/clients/{client_id}/domains/{domain_id}/assignments',
  'GET /v2/clients/{client_id}/domains/{domain_id}/assignments/{key}',
  'PUT /v2/clients/{client_id}/domains/{domain_id}/assignments/{key}',
  'GET /v2/clients/{client_id}/domains/{domain_id}/assignments/{key}/revisions',
  'POST /v2/clients/{client_id}/domains/{domain_id}/assignments/{key}/jobs',
  'GET /v2/clients/{client_id}/domains/{domain_id}/service/{service_id}/assignments',
  'POST /v2/clients/{client_id}/domains/{domain_id}/service/{service_id}/assignments',
  'GET /v2/clients/{client_id}/domains/{domain_id}/service/{service_id}/assignments/{key}',
  'PUT /v2/clients/{client_id}/domains/{domain_id}/service/{service_id}/assignments/{key}',
  'GET /v2/clients/{client_id}/domains/{domain_id}/service/{service_id}/assignments/{key}/revisions',
  'POST /v2/clients/{client_id}/domains/{domain_id}/service/{service_id}/assignments/{key}/jobs',
  'POST /v2/clients/{client_id}/domains/{domain_id}/services/init',
  'GET /v2/clients/{client_id}/domains/{domain_id}/jobs',
  'POST /v2/clients/{client_id}/domains/{domain_id}/jobs/batch',
  'GET /v2/clients/{client_id}/domains/{domain_id}/batches',
  'GET /v2/clients/{client_id}/domains/{domain_id}/events',
  'GET /v2/clients/{client_id}/domains/{domain_id}/stats',
  'GET /v2/clients/{client_id}/stats',
  'GET /v2/clients/{client_id}/domains/{domain_id}/batches/{batch_id}',
  'GET /v2/clients/{client_id}/domains/{domain_id}/jobs/{job_id}',
  'GET /v2/clients/{client_id}/domains/{domain_id}/jobs/{job_id}/events',
  'POST /v2/clients/{client_id}/domains/{domain_id}/jobs/cancel',
  'POST /v2/clients/{client_id}/domains/{domain_id}/jobs/retry',
  'POST /v2/clients/{client_id}/domains/{domain_id}/jobs/{job_id}/cancel',
  'POST /v2/clients/{client_id}/domains/{domain_id}/jobs/{job_id}/retry',
  'GET /v2/clients/{client_id}/domains/{domain_id}/subscriptions',
  'POST /v2/clients/{client_id}/domains/{domain_id}/subscriptions',
  'GET /v2/clients/{client_id}/domains/{domain_id}/subscriptions/{subscription_id}',
  'DELETE /v2/clients/{client_id}/domains/{domain_id}/subscriptions/{subscription_id}',
  'POST /v2/clients/{client_id}/domains/{domain_id}/subscriptions/{subscription_id}/pause',
  'POST /v2/clients/{client_id}/domains/{domain_id}/subscriptions/{subscription_id}/resume',
  'GET /v2/clients/{client_id}/domains/{domain_id}/schedules',
  'GET /v2/clients/{client_id}/domains/{domain_id}/schedules/{name}',
  'PUT /v2/clients/{client_id}/domains/{domain_id}/schedules/{name}',
  'DELETE /v2/clients/{client_id}/domains/{domain_id}/schedules/{name}',
].sort();

interface Media {
  example?: unknown;
}

interface Answer {
  content?: Record<string, { schema?: unknown; example?: unknown }>;
  headers?: Record<string, unknown>;
}

interface Operation {
  requestBody?: { content?: Record<string, { schema?: unknown }> };
  responses?: Record<string, Answer>;
  security?: unknown[];
}

describeOnEachBackend('openapi document', (server) => {
  it('validates as OpenAPI 3.1 under the Redocly recommended rules', async () => {
    const response = await server().get('/openapi.json', { token: null });
    assert.equal(response.status, 200);
    assert.equal(response.body.openapi, '3.1.0');
    const problems = await lintFromString({
      source: JSON.stringify(response.body),
      absoluteRef: 'openapi.json',
      config: await createConfig({
        extends: ['recommended'],
        // Health probes have no client errors to document.
        rules: { 'operation-4xx-response': 'off' },
      }),
    });
    const summary = problems.map(
      (p) => `${p.severity} ${p.ruleId}: ${p.message} at ${p.location[0]?.pointer ?? '?'}`,
    );
    assert.deepEqual(summary, []);
  });

  it('lists every route with request and response schemas', async () => {
    const doc = (await server().get('/openapi.json', { token: null })).body as {
      paths: Record<string, Record<string, Operation>>;
    };
    const operations = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`),
    );
    assert.deepEqual(operations.sort(), EXPECTED_OPERATIONS);

    for (const [path, methods] of Object.entries(doc.paths)) {
      for (const [method, operation] of Object.entries(methods)) {
        const where = `${method.toUpperCase()} ${path}`;
        const success = Object.entries(operation.responses ?? {}).filter(([code]) =>
          code.startsWith('2'),
        );
        assert.ok(success.length > 0, `${where} documents a success response`);
        for (const [code, answer] of success) {
          if (code === '204') continue; // no content
          const media =
            path === '/metrics'
              ? 'text/plain'
              : path.endsWith('/domains/{domain_id}/events')
                ? 'text/event-stream'
                : 'application/json';
          assert.ok(answer.content?.[media]?.schema, `${where} ${code} has a schema`);
        }
        if (method === 'put') {
          assert.ok(operation.requestBody?.content?.['application/json']?.schema, `${where} body`);
        }
        if (path.startsWith('/v2/')) {
          for (const code of ['400', '401', '403']) {
            assert.ok(operation.responses?.[code], `${where} documents ${code}`);
          }
        }
      }
    }
  });

  it('names its schemas, refers to them, and documents every status with its own example', async () => {
    const doc = (await server().get('/openapi.json', { token: null })).body as {
      paths: Record<string, Record<string, Operation & { responses: Record<string, Answer> }>>;
      components: { schemas: Record<string, Record<string, unknown>> };
    };
    const schemas = doc.components.schemas;
    for (const name of [
      'Job',
      'JobStatus',
      'JobError',
      'Client',
      'Domain',
      'Service',
      'Model',
      'ModelVersion',
      'Handler',
      'Assignment',
      'Subscription',
      'Schedule',
      'Batch',
      'Error',
      'JobPage',
    ]) {
      assert.ok(schemas[name], `components.schemas.${name}`);
    }
    assert.deepEqual(schemas['JobStatus']!['enum'], [
      'queued',
      'dispatched',
      'running',
      'success',
      'failure',
      'cancelled',
    ]);
    assert.deepEqual(schemas['FeatureType']!['type'], 'string');
    assert.ok(Array.isArray(schemas['FeatureType']!['enum']));
    assert.deepEqual(schemas['Handler']!['discriminator'], {
      propertyName: 'type',
      mapping: {
        worker: '#/components/schemas/WorkerHandler',
        http: '#/components/schemas/HttpHandler',
        command: '#/components/schemas/CommandHandler',
        truefoundry: '#/components/schemas/TrueFoundryHandler',
      },
    });
    assert.equal((schemas['Handler']!['oneOf'] as unknown[]).length, 4);

    const text = JSON.stringify(doc);
    assert.ok(!text.includes('Default Response'), 'every response has its own description');
    // The error schema lives once, in components: no inlined copy of it in any path.
    assert.ok(!JSON.stringify(doc.paths).includes('"success":{'), 'Error is referred to');

    const examples = new Map<string, Set<string>>();
    for (const [path, methods] of Object.entries(doc.paths)) {
      if (!path.startsWith('/v2/')) continue;
      for (const [method, operation] of Object.entries(methods)) {
        const where = `${method.toUpperCase()} ${path}`;
        const statuses = ['400', '401', '403', '429', '503'];
        if (method !== 'get') statuses.push('413', '415');
        for (const status of statuses) {
          assert.ok(operation.responses[status], `${where} documents ${status}`);
        }
        for (const status of ['429', '503']) {
          assert.ok(operation.responses[status]!.headers?.['retry-after'], `${where} ${status}`);
        }
        assert.ok(operation.responses['401']!.headers?.['www-authenticate'], `${where} 401`);
        for (const [status, answer] of Object.entries(operation.responses)) {
          if (!/^[45]/.test(status)) continue;
          const media = answer.content?.['application/json'];
          assert.deepEqual(media?.schema, { $ref: '#/components/schemas/Error' }, where);
          const message = (media?.example as { message?: string } | undefined)?.message;
          assert.ok(message, `${where} ${status} has an example`);
          if (!examples.has(status)) examples.set(status, new Set());
          examples.get(status)!.add(message);
        }
        // The example fits the route: a 403 names the route's scope.
        const forbidden = operation.responses['403']!.content!['application/json']!.example as {
          message: string;
        };
        assert.match(forbidden.message, /scope|may not act/, where);
      }
    }
    // Not one message for every route: 404, 409 and 422 say what each route looks up or checks.
    for (const status of ['400', '403', '404', '409', '422']) {
      assert.ok((examples.get(status)?.size ?? 0) > 3, `${status} examples differ by route`);
    }
  });

  it("documents the seed routes with the seeds' own request examples", async () => {
    const doc = (await server().get('/openapi.json', { token: null })).body as {
      paths: Record<string, Record<string, { requestBody?: { content: Record<string, Media> } }>>;
    };
    const seeds = [
      '000_072d325741a0793e.txt',
      '001_2b0877d1aa624c61.txt',
      '002_1453c3afe5dbbb6a.txt',
      '003_60f69446520605e8.txt',
    ].map(readSeedCurl);
    for (const seed of seeds) {
      // The seed's URL with its example ids, matched against the templated paths.
      const path = new URL(seed.url).pathname;
      // The most literal template wins, as in the router: services/init over services/{id}.
      const match = Object.keys(doc.paths)
        .filter((template) => new RegExp(`^${template.replace(/\{[^}]+\}/g, '[^/]+')}$`).test(path))
        .sort((a, b) => a.split('{').length - b.split('{').length)[0];
      assert.ok(match, `${seed.seed}: ${path} is documented`);
      const operation = doc.paths[match]![seed.method.toLowerCase()];
      assert.ok(operation, `${seed.seed}: ${seed.method} ${match}`);
      if (seed.data === undefined) continue;
      const media = operation.requestBody?.content['application/json'];
      // @fastify/swagger lifts a schema's first example to the media type's `example`.
      assert.deepEqual(media?.example, JSON.parse(seed.data), `${seed.seed} request example`);
    }
  });

  it('serves the reference UI at /docs', async () => {
    const response = await fetch(`${server().url}/docs/`);
    assert.equal(response.status, 200);
    assert.match(await response.text(), /swagger-ui/i);
  });
});
