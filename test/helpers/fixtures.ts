import { assertStatus, expectBody } from './assertions.js';
import type { TestServer } from './test-server.js';

let counter = 0;

/**
 * An id no other test of this file uses (prefix, process and a counter): the tests of a file
 * share one server and database per backend, so each works on objects of its own.
 */
export function uniqueId(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}

export const ROUTE_CONTRACT = [
  { name: 'route', type: 'string', required: true },
  { name: 'capacity', type: 'integer', default: 60 },
];

/** One entry of a 422's `problems`: the feature at fault and what is wrong with it. */
export interface FeatureProblem {
  feature: string;
  message: string;
}

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
  version?: {
    handler?: unknown;
    timeout_s?: number;
    max_attempts?: number;
    max_in_flight?: number;
  };
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
  assertStatus(await server.put(`/v2/clients/${clientId}`, {}), 201);
  assertStatus(await server.put(domainPath, {}), 201);
  assertStatus(await server.put(`/v2/models/${modelId}`, {}), 201);
  assertStatus(
    await server.put(`/v2/models/${modelId}/versions/${version}`, {
      features: options.features ?? ROUTE_CONTRACT,
      job_types: options.jobTypes ?? ['inference', 'training'],
      ...options.version,
    }),
    201,
  );
  const services = Object.entries(options.services ?? { 'service-1': { route: 'r1' } });
  for (const [serviceId, provided] of services) {
    assertStatus(
      await server.put(`${domainPath}/services/${serviceId}`, { provided_features: provided }),
      201,
    );
  }
  if (options.assignDefault !== false) {
    assertStatus(
      await server.put(`${domainPath}/assignments/default`, {
        model_id: modelId,
        model_version: version,
      }),
      201,
    );
  }
  return { clientId, domainId, modelId, version, domainPath, services: services.map(([id]) => id) };
}

/**
 * A second client, with a domain `elsewhere` and its service-1, whose default assignment runs
 * `tenant`'s model version (so the two share its queue); answers the domain's path.
 */
export async function sharingClient(
  server: TestServer,
  tenant: Tenant,
  clientId: string,
): Promise<string> {
  const domainPath = `/v2/clients/${clientId}/domains/elsewhere`;
  assertStatus(await server.put(`/v2/clients/${clientId}`, {}), 201);
  assertStatus(await server.put(domainPath, {}), 201);
  assertStatus(await server.put(`${domainPath}/services/service-1`, {}), 201);
  assertStatus(
    await server.put(`${domainPath}/assignments/default`, {
      model_id: tenant.modelId,
      model_version: tenant.version,
    }),
    201,
  );
  return domainPath;
}

/** The completion route of one of the tenant's jobs. */
export function completePath(tenant: Tenant, jobId: string): string {
  return `/v2/models/${tenant.modelId}/versions/${tenant.version}/jobs/${jobId}/complete`;
}

/** The run-job route of a service's assignment `key`. */
export function runJobPath(domainPath: string, serviceId = 'service-1', key = 'default'): string {
  return `${domainPath}/service/${serviceId}/assignments/${key}/jobs`;
}

/** Runs a job on the tenant's service-1 (its default assignment); asserts 202, returns the id. */
export async function runJob(
  server: TestServer,
  tenant: Tenant,
  body: Record<string, unknown> = {},
): Promise<string> {
  return expectBody<{ job_id: string }>(await server.post(runJobPath(tenant.domainPath), body), 202)
    .job_id;
}

/**
 * The tenant's training jobs, oldest first, as stored: the trigger as the API shows it (a
 * debounced job's composed from the completions that joined it), and when each is due.
 */
export async function trainingJobs(server: TestServer, tenant: Tenant) {
  const { rows } = await server.db.query<{ job_id: string; trigger: any; run_at: Date }>(
    `select job_id, pie_job_trigger(client_id, job_id, debounce_subscription_id, trigger) as trigger,
       run_at from jobs
     where client_id = $1 and job_type = 'training' order by created_at`,
    [tenant.clientId],
  );
  return rows;
}
