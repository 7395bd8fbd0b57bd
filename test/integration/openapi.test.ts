import assert from 'node:assert/strict';
import { it } from 'node:test';
import { createConfig, lintFromString } from '@redocly/openapi-core';
import { describeOnEachBackend } from '../helpers/test-server.js';

/** Every route built so far; the document must list exactly these. */
const EXPECTED_OPERATIONS = [
  'GET /healthz',
  'GET /readyz',
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
  'GET /v2/clients/{client_id}/domains/{domain_id}/jobs/{job_id}',
  'POST /v2/clients/{client_id}/domains/{domain_id}/jobs/{job_id}/cancel',
  'GET /v2/clients/{client_id}/domains/{domain_id}/subscriptions',
  'POST /v2/clients/{client_id}/domains/{domain_id}/subscriptions',
  'GET /v2/clients/{client_id}/domains/{domain_id}/subscriptions/{subscription_id}',
  'DELETE /v2/clients/{client_id}/domains/{domain_id}/subscriptions/{subscription_id}',
  'POST /v2/clients/{client_id}/domains/{domain_id}/subscriptions/{subscription_id}/pause',
  'POST /v2/clients/{client_id}/domains/{domain_id}/subscriptions/{subscription_id}/resume',
].sort();

interface Operation {
  requestBody?: { content?: Record<string, { schema?: unknown }> };
  responses?: Record<string, { content?: Record<string, { schema?: unknown }> }>;
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
          assert.ok(answer.content?.['application/json']?.schema, `${where} ${code} has a schema`);
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

  it('serves the reference UI at /docs', async () => {
    const response = await fetch(`${server().url}/docs/`);
    assert.equal(response.status, 200);
    assert.match(await response.text(), /swagger-ui/i);
  });
});
