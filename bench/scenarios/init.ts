import { performance } from 'node:perf_hooks';
import { Agent, request } from 'undici';
import { rssMetric } from '../rss.js';
import { apiOk, withClient } from '../setup.js';
import type { BenchContext, Metric } from '../types.js';

/**
 * Services init over 10,000 services (and 100,000 and 1,000,000 in a full run), and the domain
 * default upsert over 10,000. The services are written straight into the database (their
 * set-up is not what is measured); the default is assigned through PIE, which resolves their
 * features. Runs on PostgreSQL only.
 */

/** Quick runs keep to the smallest size. */
const SIZES = { quick: [10_000], full: [10_000, 100_000, 1_000_000] };

/**
 * A connection pool for the timed requests: the default assignment over 1,000,000 services, and
 * the init's answer listing them all, may take longer than undici's default 300 s for headers
 * and body, which would be a failure rather than a figure.
 */
const patientAgent = () => new Agent({ headersTimeout: 30 * 60_000, bodyTimeout: 30 * 60_000 });

const CLIENT = 'bench-init';
const MODEL = 'bench-init-model';
const FEATURES_V1 = [
  { name: 'route', type: 'string', required: true },
  { name: 'capacity', type: 'integer', default: 60 },
  { name: 'mode', type: 'enum', values: ['bus', 'tram', 'train'] },
];
// Every service satisfies 2.0.0 too, and every one's resolved_features change (new default,
// new feature), so the upsert resolves and rewrites all of them.
const FEATURES_V2 = [
  { name: 'route', type: 'string', required: true },
  { name: 'capacity', type: 'integer', default: 80 },
  { name: 'mode', type: 'enum', values: ['bus', 'tram', 'train'] },
  { name: 'region', type: 'string', default: 'south' },
];

async function insertServices(databaseUrl: string, domainId: string, count: number) {
  await withClient(databaseUrl, (client) =>
    client.query(
      `insert into services (client_id, domain_id, service_id, provided_features)
       select $1, $2, 's' || lpad(i::text, 6, '0'),
              jsonb_build_object('route', 'route-' || (i % 500),
                                 'mode', (array['bus', 'tram', 'train'])[1 + i % 3])
       from generate_series(0, $3::int - 1) as i`,
      [CLIENT, domainId, count],
    ),
  );
}

/** Seconds from sending `method route` to PIE's answer (status line and headers). */
async function timed(
  ctx: BenchContext,
  agent: Agent,
  method: 'PUT' | 'POST',
  route: string,
  body: unknown,
  expected: number,
): Promise<{ seconds: number; answer: unknown }> {
  const started = performance.now();
  const response = await request(ctx.pieUrl + route, {
    method,
    dispatcher: agent,
    headers: {
      authorization: `Bearer ${ctx.adminToken}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const seconds = (performance.now() - started) / 1000;
  const text = await response.body.text();
  if (response.statusCode !== expected) {
    throw new Error(`${method} ${route} answered ${response.statusCode}: ${text.slice(0, 500)}`);
  }
  return { seconds, answer: JSON.parse(text) as unknown };
}

const round = (seconds: number) => Math.round(seconds * 1000) / 1000;

export async function initScenario(ctx: BenchContext): Promise<Metric[]> {
  const { pieUrl, adminToken: token } = ctx;
  await apiOk(pieUrl, token, 'PUT', `/v2/clients/${CLIENT}`, { name: 'init bench' });
  await apiOk(pieUrl, token, 'PUT', `/v2/models/${MODEL}`, {});
  await apiOk(pieUrl, token, 'PUT', `/v2/models/${MODEL}/versions/1.0.0`, {
    features: FEATURES_V1,
  });
  await apiOk(pieUrl, token, 'PUT', `/v2/models/${MODEL}/versions/2.0.0`, {
    features: FEATURES_V2,
  });

  const metrics: Metric[] = [];
  const agent = patientAgent();
  try {
    for (const size of ctx.quick ? SIZES.quick : SIZES.full) {
      const domainId = `init-${size}`;
      const domain = `/v2/clients/${CLIENT}/domains/${domainId}`;
      await apiOk(pieUrl, token, 'PUT', domain, {});
      await insertServices(ctx.databaseUrl, domainId, size);
      const assigned = await timed(
        ctx,
        agent,
        'PUT',
        `${domain}/assignments/default`,
        { model_id: MODEL, model_version: '1.0.0' },
        201,
      );
      ctx.log(
        `init: ${size} services inserted, default assigned in ${assigned.seconds.toFixed(2)} s`,
      );

      const init = await timed(ctx, agent, 'POST', `${domain}/services/init`, undefined, 202);
      const started = (init.answer as { dispatched_services: string[] }).dispatched_services.length;
      if (started !== size) throw new Error(`services init started ${started} jobs, not ${size}`);
      ctx.log(`init: ${size} jobs in ${init.seconds.toFixed(3)} s`);
      metrics.push({ name: `init.${size}.seconds`, value: round(init.seconds), unit: 's' });

      if (size === 10_000) {
        const upsert = await timed(
          ctx,
          agent,
          'PUT',
          `${domain}/assignments/default`,
          { model_id: MODEL, model_version: '2.0.0' },
          200,
        );
        const rewritten = await withClient(ctx.databaseUrl, (client) =>
          client.query(
            `select count(*)::int as n from services
             where client_id = $1 and domain_id = $2 and resolved_features->>'region' = 'south'`,
            [CLIENT, domainId],
          ),
        );
        const resolved = (rewritten.rows[0] as { n: number }).n;
        if (resolved !== size)
          throw new Error(`the upsert resolved ${resolved} services, not ${size}`);
        ctx.log(`default upsert: ${size} services resolved in ${upsert.seconds.toFixed(3)} s`);
        metrics.push({
          name: `default_upsert.${size}.seconds`,
          value: round(upsert.seconds),
          unit: 's',
        });
      }
    }
  } finally {
    await agent.close();
  }
  metrics.push(rssMetric('after_init', ctx.piePid));
  return metrics;
}
