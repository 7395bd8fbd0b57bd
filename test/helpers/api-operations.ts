import assert from 'node:assert/strict';
import type { Scope } from '../../src/auth/caller.js';
import type { SeededTenant } from './seeded-tenant.js';
import type { TestServer } from './test-server.js';

/** A /v2 operation of the served OpenAPI document and the scope it declares. */
export interface ApiOperation {
  method: string;
  /** Templated, e.g. `/v2/clients/{client_id}`. */
  path: string;
  scope: Scope;
}

/** Every /v2 operation the server publishes, so a route added later is covered too. */
export async function apiOperations(server: TestServer): Promise<ApiOperation[]> {
  const doc = (await server.get('/openapi.json', { token: null })).body as {
    paths: Record<string, Record<string, { security?: { bearerAuth?: Scope[] }[] }>>;
  };
  return Object.entries(doc.paths)
    .filter(([path]) => path.startsWith('/v2/'))
    .flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, operation]) => {
        const scope = operation.security?.[0]?.bearerAuth?.[0];
        assert.ok(scope, `${method} ${path} documents its scope`);
        return { method: method.toUpperCase(), path, scope };
      }),
    );
}

/** Path parameters naming the seeded tenant's own objects. */
export function tenantParams(tenant: SeededTenant): Record<string, string> {
  return {
    client_id: tenant.clientId,
    domain_id: tenant.domainId,
    service_id: tenant.services[0]!,
    model_id: tenant.modelId,
    version: tenant.version,
    key: 'default',
    job_id: tenant.queuedJobs[0]!,
    subscription_id: tenant.subscriptionId,
    batch_id: tenant.batchId,
    // A schedule the seed does not make: reads of it are a 404, a PUT creates it.
    name: 'seeded-schedule',
  };
}

export function fillPath(path: string, params: Record<string, string>): string {
  return path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = params[name];
    if (value === undefined) throw new Error(`no value for {${name}} in ${path}`);
    return encodeURIComponent(value);
  });
}

/**
 * A body that passes validation for the operation, naming `target`'s model and version (a
 * seeded tenant's, or made-up ones), so what the test varies (the token, the path) decides
 * the answer. Claims do not wait.
 */
export function validBody(
  operation: ApiOperation,
  target: { modelId: string; version: string },
): unknown {
  const { method, path } = operation;
  if (method === 'GET' || method === 'DELETE') return undefined;
  if (path.endsWith('/versions/{version}')) return { features: [] };
  if (path.endsWith('/jobs/complete')) {
    return { completions: [{ job_id: '999999999999', status: 'success' }] };
  }
  if (path.endsWith('/complete')) return { status: 'success' };
  if (path.endsWith('/claim')) return { worker_id: 'test-worker', wait_ms: 0 };
  if (path.endsWith('/heartbeat')) return { attempt: 1 };
  if (path.endsWith('/jobs/batch')) {
    return { assignment_key: 'default', jobs: [{ service_id: 'service-1' }] };
  }
  if (path.endsWith('/subscriptions')) {
    return {
      source: { model_id: target.modelId },
      action: { assignment_key: 'default', job_type: 'training' },
    };
  }
  if (method === 'PUT' && path.endsWith('/schedules/{name}')) {
    return { cron: '0 0 1 1 *', action: { type: 'services_init' } };
  }
  const assignment = { model_id: target.modelId, model_version: target.version };
  if (method === 'PUT' && path.endsWith('/assignments/{key}')) return assignment;
  if (method === 'POST' && path.endsWith('/assignments')) return { ...assignment, key: 'default' };
  return {};
}
