import { medianBy } from '../median.js';
import { readRssMb, rssMetric } from '../rss.js';
import {
  apiOk,
  describeLoad,
  failedRequests,
  inBatches,
  runLoad,
  startServerChild,
  type LoadResult,
} from '../setup.js';
import type { BenchContext, Metric } from '../types.js';

/**
 * The seed route `POST .../service/{s}/assignments/default/jobs` under load, spread over 100
 * services, against the floor: a bare Fastify route doing one INSERT into the same jobs table
 * (bench/floor-server.ts). The version has a feature contract and the default worker handler,
 * so its jobs wait for a pull worker and no dispatch work competes with the requests.
 */

const CLIENT = 'bench-run-job';
const DOMAIN = 'd1';
const MODEL = 'bench-run-job-model';
const VERSION = '1.0.0';
const SERVICES = 100;
const CONNECTIONS = 32;
const BODY = JSON.stringify({ job_type: 'inference', input: { horizon_min: 30 } });

interface Tenant {
  paths: string[];
  assignmentId: string;
}

export function loadDuration(quick: boolean): { durationS: number; warmupS: number } {
  return quick ? { durationS: 5, warmupS: 1 } : { durationS: 25, warmupS: 3 };
}

/** A client, a domain, a version with a contract of a few features, 100 services, a default. */
async function setUpTenant(pieUrl: string, token: string): Promise<Tenant> {
  const domain = `/v2/clients/${CLIENT}/domains/${DOMAIN}`;
  await apiOk(pieUrl, token, 'PUT', `/v2/clients/${CLIENT}`, { name: 'run_job bench' });
  await apiOk(pieUrl, token, 'PUT', domain, {});
  await apiOk(pieUrl, token, 'PUT', `/v2/models/${MODEL}`, {});
  await apiOk(pieUrl, token, 'PUT', `/v2/models/${MODEL}/versions/${VERSION}`, {
    features: [
      { name: 'route', type: 'string', required: true },
      { name: 'capacity', type: 'integer', default: 60 },
      { name: 'mode', type: 'enum', values: ['bus', 'tram', 'train'] },
      { name: 'stops', type: 'string[]' },
    ],
    job_types: ['inference', 'training'],
  });
  const ids = Array.from({ length: SERVICES }, (_, i) => `s${String(i).padStart(3, '0')}`);
  await inBatches(ids, 25, (id) =>
    apiOk(pieUrl, token, 'PUT', `${domain}/services/${id}`, {
      provided_features: { route: `route-${id}`, mode: 'bus', stops: ['a', 'b', 'c'] },
    }),
  );
  const assignment = (await apiOk(pieUrl, token, 'PUT', `${domain}/assignments/default`, {
    model_id: MODEL,
    model_version: VERSION,
  })) as { assignment_id: string };
  return {
    paths: ids.map((id) => `${domain}/service/${id}/assignments/default/jobs`),
    assignmentId: assignment.assignment_id,
  };
}

function load(url: string, token: string | null, tenant: Tenant, quick: boolean) {
  return runLoad({
    url,
    connections: CONNECTIONS,
    ...loadDuration(quick),
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token === null ? {} : { authorization: `Bearer ${token}` }),
    },
    body: BODY,
    paths: tenant.paths,
  });
}

function loadMetrics(prefix: string, result: LoadResult): Metric[] {
  return [
    { name: `${prefix}.requests_per_s`, value: Math.round(result.requests.average), unit: 'req/s' },
    { name: `${prefix}.p50_ms`, value: result.latency.p50, unit: 'ms' },
    { name: `${prefix}.p99_ms`, value: result.latency.p99, unit: 'ms' },
    { name: `${prefix}.errors`, value: failedRequests(result), unit: 'requests' },
  ];
}

/** The floor on the same database, in its own process, stopped before PIE is loaded. */
async function measureFloor(ctx: BenchContext, tenant: Tenant): Promise<LoadResult> {
  const floor = await startServerChild(
    [
      'bench/floor-server.ts',
      JSON.stringify({
        databaseUrl: ctx.databaseUrl,
        clientId: CLIENT,
        domainId: DOMAIN,
        assignmentId: tenant.assignmentId,
        modelId: MODEL,
        modelVersion: VERSION,
      }),
    ],
    { PATH: process.env['PATH'], HOME: process.env['HOME'] },
    /floor serving at (http:\/\/\S+)/,
  );
  try {
    const result = await load(floor.url, null, tenant, ctx.quick);
    ctx.log(`floor: ${describeLoad(result)}`);
    return result;
  } finally {
    await floor.stop();
  }
}

/**
 * floor, then run_job against the PostgreSQL PIE: once in a quick run, three times in a full
 * one (figures from the median run, RSS after each run to show it does not grow).
 */
export async function runJobScenario(ctx: BenchContext): Promise<Metric[]> {
  const tenant = await setUpTenant(ctx.pieUrl, ctx.adminToken);
  ctx.log(`run_job: PIE's RSS before any load: ${readRssMb(ctx.piePid)} MB`);
  const floor = await measureFloor(ctx, tenant);
  const metrics: Metric[] = [
    { name: 'floor.requests_per_s', value: Math.round(floor.requests.average), unit: 'req/s' },
    { name: 'floor.p99_ms', value: floor.latency.p99, unit: 'ms' },
  ];
  const runs: LoadResult[] = [];
  const repeats = ctx.quick ? 1 : 3;
  for (let repeat = 1; repeat <= repeats; repeat++) {
    const result = await load(ctx.pieUrl, ctx.adminToken, tenant, ctx.quick);
    ctx.log(`run_job ${repeat}/${repeats}: ${describeLoad(result)}`);
    runs.push(result);
    if (repeats > 1) {
      metrics.push(
        {
          name: `run_job.repeat_${repeat}.requests_per_s`,
          value: Math.round(result.requests.average),
          unit: 'req/s',
        },
        rssMetric(`run_job.repeat_${repeat}`, ctx.piePid),
      );
    }
  }
  const median = medianBy(runs, (run) => run.requests.average);
  metrics.push(...loadMetrics('run_job', median), {
    name: 'run_job.ratio_to_floor',
    value: Math.round((median.requests.average / floor.requests.average) * 100) / 100,
    unit: 'x',
  });
  metrics.push(rssMetric('after_run_job', ctx.piePid));
  return metrics;
}

/** The same load against a `pie serve` on the embedded PGlite (ctx names that PIE). */
export async function runJobEmbeddedScenario(ctx: BenchContext): Promise<Metric[]> {
  const tenant = await setUpTenant(ctx.pieUrl, ctx.adminToken);
  ctx.log(`run_job_embedded: PIE's RSS before the load: ${readRssMb(ctx.piePid)} MB`);
  const result = await load(ctx.pieUrl, ctx.adminToken, tenant, ctx.quick);
  ctx.log(`run_job_embedded: ${describeLoad(result)}`);
  return [
    ...loadMetrics('run_job_embedded', result),
    rssMetric('after_run_job_embedded', ctx.piePid),
  ];
}
