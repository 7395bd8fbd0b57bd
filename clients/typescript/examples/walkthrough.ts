/**
 * The README's walk-through, through the typed client. With `npm start` running:
 *
 *   export PIE_TOKEN=$(npm run -s pie -- token --scope admin)
 *   npx tsx clients/typescript/examples/walkthrough.ts
 *
 * PIE_URL defaults to http://127.0.0.1:8080. Running it again is safe: every PUT says what it
 * wants to be, and the jobs are new each time.
 */
import { createPieClient, listAll, orThrow, pages } from '../src/index.js';

const baseUrl = process.env['PIE_URL'] ?? 'http://127.0.0.1:8080';
const token = process.env['PIE_TOKEN'];
if (token === undefined || token === '') {
  process.stderr.write(
    'Set PIE_TOKEN to an admin token: export PIE_TOKEN=$(npm run -s pie -- token --scope admin)\n',
  );
  process.exit(1);
}

const pie = createPieClient({ baseUrl, token });
const domain = { client_id: 'client-1', domain_id: 'south_australia' };
const version = { model_id: 'example-model', version: '2.0.0' };
const service = { ...domain, service_id: 'service-1' };
const features = [
  { name: 'route', type: 'string', required: true },
  { name: 'capacity', type: 'integer', default: 60 },
  { name: 'mode', type: 'enum', values: ['bus', 'tram', 'train'] },
];
const show = (label: string, value: unknown) => console.log(`${label}:`, JSON.stringify(value));

// A client (tenant) and a domain (region) inside it
orThrow(
  await pie.PUT('/v2/clients/{client_id}', {
    params: { path: { client_id: domain.client_id } },
    body: { name: 'Adelaide Metro' },
  }),
);
orThrow(
  await pie.PUT('/v2/clients/{client_id}/domains/{domain_id}', {
    params: { path: domain },
    body: {},
  }),
);

// A model and a version whose feature contract is frozen once registered
orThrow(
  await pie.PUT('/v2/models/{model_id}', {
    params: { path: { model_id: version.model_id } },
    body: { description: 'Service delay' },
  }),
);
const registered = orThrow(
  await pie.PUT('/v2/models/{model_id}/versions/{version}', {
    params: { path: version },
    body: { features, job_types: ['inference', 'training'] },
  }),
);
show('version 2.0.0 handler', registered.handler);

// Sending a different contract for the same version is refused (409): versions are frozen
const changed = await pie.PUT('/v2/models/{model_id}/versions/{version}', {
  params: { path: version },
  body: { features: [{ name: 'route', type: 'integer' }] },
});
show(`changing the contract: ${changed.response.status}`, changed.error?.message);

// Invalid definitions are a 422 that names every problem
const invalid = await pie.PUT('/v2/models/{model_id}/versions/{version}', {
  params: { path: { ...version, version: '3.0.0' } },
  body: {
    features: [
      { name: 'route', type: 'float' },
      { name: 'mode', type: 'enum' },
    ],
  },
});
show(`an invalid contract: ${invalid.response.status}`, invalid.error?.problems);

// A service with the features its operator knows
orThrow(
  await pie.PUT('/v2/clients/{client_id}/domains/{domain_id}/services/{service_id}', {
    params: { path: service },
    body: { provided_features: { route: 'route-a', mode: 'bus' } },
  }),
);

// Assign the version as the domain default: every service is resolved against its contract
orThrow(
  await pie.PUT('/v2/clients/{client_id}/domains/{domain_id}/assignments/{key}', {
    params: { path: { ...domain, key: 'default' } },
    body: { model_id: version.model_id, model_version: version.version },
  }),
);
const resolved = orThrow(
  await pie.GET('/v2/clients/{client_id}/domains/{domain_id}/services/{service_id}', {
    params: { path: service },
  }),
);
show('resolved_features', resolved.resolved_features);

// Run an inference job (202 {job_id}); subscribe: true also retrains on completion
const runJobPath =
  '/v2/clients/{client_id}/domains/{domain_id}/service/{service_id}/assignments/{key}/jobs';
const run = orThrow(
  await pie.POST(runJobPath, {
    params: { path: { ...service, key: 'default' } },
    body: { job_type: 'inference', input: { horizon_min: 30 }, subscribe: true },
  }),
);
const jobPath = '/v2/clients/{client_id}/domains/{domain_id}/jobs/{job_id}';
const queued = orThrow(
  await pie.GET(jobPath, { params: { path: { ...domain, job_id: run.job_id } } }),
);
show(`job ${queued.job_id}`, queued.status);

// The model handler reports completion; the subscription starts a training job
const completed = orThrow(
  await pie.POST('/v2/models/{model_id}/versions/{version}/jobs/{job_id}/complete', {
    params: { path: { ...version, job_id: run.job_id } },
    body: { status: 'success', output: { predictions: 's3://bucket/p.json' } },
  }),
);
show('completed; triggered', completed.triggered_events);
const jobsPath = '/v2/clients/{client_id}/domains/{domain_id}/jobs';
for await (const job of listAll(pie, jobsPath, {
  path: domain,
  query: { job_type: 'training', limit: 1 },
})) {
  if (job.trigger !== null) show(`training job ${job.job_id}, ${job.status}`, job.trigger);
}

// One inference job for every service of the domain, safe to retry with an Idempotency-Key
const init = orThrow(
  await pie.POST('/v2/clients/{client_id}/domains/{domain_id}/services/init', {
    params: { path: domain, header: { 'idempotency-key': 'init-1' } },
  }),
);
show('services init', init);

// Urgent work first; failed or cancelled jobs run again as new jobs naming them in retry_of
const urgent = orThrow(
  await pie.POST(runJobPath, {
    params: { path: { ...service, key: 'default' } },
    body: { priority: 50 },
  }),
);
orThrow(
  await pie.POST('/v2/clients/{client_id}/domains/{domain_id}/jobs/{job_id}/cancel', {
    params: { path: { ...domain, job_id: urgent.job_id } },
  }),
);
const retried = orThrow(
  await pie.POST('/v2/clients/{client_id}/domains/{domain_id}/jobs/retry', {
    params: { path: domain },
    body: { status: 'cancelled' },
  }),
);
show('retried the cancelled jobs', retried);

// At most 8 of this version's jobs dispatched or running at once (all tenants)
const capped = orThrow(
  await pie.PUT('/v2/models/{model_id}/versions/{version}', {
    params: { path: version },
    body: { features, max_in_flight: 8 },
  }),
);
show('max_in_flight', capped.max_in_flight);

// Every night at 02:30 Adelaide time, one inference job per service; then paused
const schedulePath = '/v2/clients/{client_id}/domains/{domain_id}/schedules/{name}';
const nightly = { ...domain, name: 'nightly' };
orThrow(
  await pie.PUT(schedulePath, {
    params: { path: nightly },
    body: {
      cron: '30 2 * * *',
      timezone: 'Australia/Adelaide',
      action: { type: 'services_init' },
    },
  }),
);
const paused = orThrow(
  await pie.PUT(schedulePath, { params: { path: nightly }, body: { status: 'paused' } }),
);
show('schedule nightly', paused.status);

// Everything is listed in pages of {items, next_cursor}; pages() follows the cursors
let pageCount = 0;
for await (const page of pages(pie, jobsPath, { path: domain, query: { limit: 2 } })) {
  pageCount += 1;
  if (pageCount === 1)
    show(
      'first page',
      page.items.map((job) => [job.job_id, job.status]),
    );
}
show('pages of two jobs', pageCount);

// A pull worker's turn, as `pie worker --once` takes it: claim the version's queued jobs (the
// services init, the retraining, the retry) and complete each with its own callback token.
const claimed = orThrow(
  await pie.POST('/v2/models/{model_id}/versions/{version}/jobs/claim', {
    params: { path: version },
    body: { worker_id: 'walkthrough', max_jobs: 10 },
  }),
);
for (const envelope of claimed.jobs) {
  const handler = createPieClient({ baseUrl, token: envelope.callback.token });
  const done = orThrow(
    await handler.POST('/v2/models/{model_id}/versions/{version}/jobs/{job_id}/complete', {
      params: { path: { ...version, job_id: envelope.job_id } },
      body: {
        status: 'success',
        output: { job_type: envelope.job_type, features: envelope.features },
      },
    }),
  );
  show(`worker completed ${envelope.job_type} job ${done.job_id}`, done.status);
}
