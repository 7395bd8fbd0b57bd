import assert from 'node:assert/strict';
import type { TestServer } from './test-server.js';

let counter = 0;

/** A unique id for this test run, so tests sharing a server never share data. */
export function uniqueId(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}

export const ROUTE_CONTRACT = [
  { name: 'route', type: 'string', required: true },
  { name: 'capacity', type: 'integer', default: 60 },
];

export interface Tenant {
  clientId: string;
  domainId: string;
  modelId: string;
  version: string;
  /** `/v2/clients/{client}/domains/{domain}` */
  domainPath: string;
  services: string[];
}

export interface TenantOptions {
  features?: unknown[];
  jobTypes?: string[];
  /** service id suffix → provided features; every one is created before the default. */
  services?: Record<string, Record<string, unknown>>;
  /** Assign the model version as the domain default (default true). */
  assignDefault?: boolean;
  /** The version's handler and settings (default: a pull worker, 3600 s, 5 attempts). */
  version?: { handler?: unknown; timeout_s?: number; max_attempts?: number };
}

/**
 * A client with one domain, a model version, services and (by default) the version assigned
 * as the domain default, all made through the API as a user would.
 */
export async function createTenant(
  server: TestServer,
  options: TenantOptions = {},
): Promise<Tenant> {
  const clientId = uniqueId('client');
  const domainId = 'south_australia';
  const modelId = uniqueId('model');
  const version = '1.0.0';
  const domainPath = `/v2/clients/${clientId}/domains/${domainId}`;
  await expectStatus(server.put(`/v2/clients/${clientId}`, {}), 201);
  await expectStatus(server.put(domainPath, {}), 201);
  await expectStatus(server.put(`/v2/models/${modelId}`, {}), 201);
  await expectStatus(
    server.put(`/v2/models/${modelId}/versions/${version}`, {
      features: options.features ?? ROUTE_CONTRACT,
      job_types: options.jobTypes ?? ['inference', 'training'],
      ...options.version,
    }),
    201,
  );
  const services = Object.entries(options.services ?? { 'service-1': { route: 'r1' } });
  for (const [serviceId, provided] of services) {
    await expectStatus(
      server.put(`${domainPath}/services/${serviceId}`, { provided_features: provided }),
      201,
    );
  }
  if (options.assignDefault !== false) {
    await expectStatus(
      server.put(`${domainPath}/assignments/default`, {
        model_id: modelId,
        model_version: version,
      }),
      201,
    );
  }
  return { clientId, domainId, modelId, version, domainPath, services: services.map(([id]) => id) };
}

async function expectStatus(pending: ReturnType<TestServer['call']>, status: number) {
  const response = await pending;
  assert.equal(response.status, status, JSON.stringify(response.body));
  return response;
}
