import { Agent, request } from 'undici';

/**
 * What the PIE scenarios share: a small HTTP client on its own keep-alive connection pool, and
 * a tenant set up over the API as an operator would (client, domain, model version handled by
 * pull workers, services, default assignment).
 */

export interface PieAnswer<T> {
  status: number;
  body: T;
}

/** The part of a claimed job's envelope the scenarios use. */
export interface ClaimedJob {
  job_id: string;
  attempt: number;
  callback: { url: string; token: string };
}

export interface ClaimAnswer {
  jobs: ClaimedJob[];
}

export interface RunJobAnswer {
  job_id: string;
}

type Method = 'GET' | 'PUT' | 'POST';

export class PieClient {
  // One pool per scenario, closed at its end, so no keep-alive socket outlives the scenario.
  private readonly agent = new Agent({ keepAliveTimeout: 60_000 });

  constructor(
    readonly baseUrl: string,
    private readonly token: string,
  ) {}

  /** `target` is a path under the base URL, or an absolute URL (a job's callback). */
  async call<T>(
    method: Method,
    target: string,
    body?: unknown,
    options: { token?: string; signal?: AbortSignal } = {},
  ): Promise<PieAnswer<T>> {
    const url = target.startsWith('http') ? target : this.baseUrl + target;
    const response = await request(url, {
      method,
      dispatcher: this.agent,
      headers: {
        authorization: `Bearer ${options.token ?? this.token}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: options.signal,
    });
    const text = await response.body.text();
    return { status: response.statusCode, body: (text === '' ? undefined : JSON.parse(text)) as T };
  }

  /** Like `call`, but any status other than `expected` is an error naming the answer. */
  async expect<T>(
    expected: number | number[],
    method: Method,
    target: string,
    body?: unknown,
    options: { token?: string; signal?: AbortSignal } = {},
  ): Promise<T> {
    const answer = await this.call<T>(method, target, body, options);
    if (!(Array.isArray(expected) ? expected : [expected]).includes(answer.status)) {
      throw new Error(
        `${method} ${target} answered ${answer.status}: ${JSON.stringify(answer.body)}`,
      );
    }
    return answer.body;
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

export interface BenchTenant {
  clientId: string;
  domainId: string;
  modelId: string;
  version: string;
  services: string[];
  /** `POST` here to claim jobs of the model version. */
  claimPath: string;
  /** `POST` here to run a job on a service's default assignment. */
  runPath: (serviceId: string) => string;
}

/**
 * A client `clientId` with one domain, a model `modelId` version `1` whose handler is the
 * default pull worker (no features, so services need none), `services` services and the
 * version assigned as the domain default. Ids are the caller's, so that scenarios sharing one
 * database never claim each other's jobs (a claim is per model version).
 */
export async function createBenchTenant(
  pie: PieClient,
  clientId: string,
  modelId: string,
  services: number,
): Promise<BenchTenant> {
  const domainId = 'bench';
  const version = '1';
  const domainPath = `/v2/clients/${clientId}/domains/${domainId}`;
  // 201 when created, 200 when it already existed (a scenario run twice on one database).
  await pie.expect([200, 201], 'PUT', `/v2/clients/${clientId}`, {});
  await pie.expect([200, 201], 'PUT', domainPath, {});
  await pie.expect([200, 201], 'PUT', `/v2/models/${modelId}`, {});
  await pie.expect([200, 201], 'PUT', `/v2/models/${modelId}/versions/${version}`, {
    features: [],
    handler: { type: 'worker' },
  });
  const serviceIds = Array.from({ length: services }, (_, i) => `service-${i + 1}`);
  for (const serviceId of serviceIds) {
    await pie.expect([200, 201], 'PUT', `${domainPath}/services/${serviceId}`, {});
  }
  await pie.expect([200, 201], 'PUT', `${domainPath}/assignments/default`, {
    model_id: modelId,
    model_version: version,
  });
  return {
    clientId,
    domainId,
    modelId,
    version,
    services: serviceIds,
    claimPath: `/v2/models/${modelId}/versions/${version}/jobs/claim`,
    runPath: (serviceId) => `${domainPath}/service/${serviceId}/assignments/default/jobs`,
  };
}

/** Completes a claimed job as its worker would, with the job's own callback token. */
export async function completeJob(pie: PieClient, job: ClaimedJob): Promise<void> {
  await pie.expect(
    [200, 207],
    'POST',
    job.callback.url,
    { status: 'success', output: {} },
    { token: job.callback.token },
  );
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
