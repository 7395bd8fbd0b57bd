import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  createPieClient,
  listAll,
  orThrow,
  PieApiError,
  type PieClient,
} from '../../clients/typescript/src/index.js';
import {
  CLIENT_SCHEMA_FILE,
  relativeToRepository,
  renderClientSchema,
} from '../../scripts/client-schema.js';
import { describeOnEachBackend } from '../helpers/test-server.js';
import { SnippetProgram, type Diagnostic } from '../helpers/typecheck-snippets.js';

/** The first line where two texts differ, to say where a stale schema file went wrong. */
function firstDifference(expected: string, actual: string): string {
  const want = expected.split('\n');
  const have = actual.split('\n');
  const index = want.findIndex((line, i) => line !== have[i]);
  const at = index === -1 ? want.length : index;
  return `line ${at + 1}: expected ${JSON.stringify(want[at])}, found ${JSON.stringify(have[at])}`;
}

/**
 * Rendering takes seconds (prettier, mostly); each backend serves the same document, so the
 * second backend's identical document is rendered once.
 */
const rendered = new Map<string, Promise<string>>();
function renderOnce(document: unknown): Promise<string> {
  const key = JSON.stringify(document);
  let schema = rendered.get(key);
  if (schema === undefined) {
    schema = renderClientSchema(document);
    rendered.set(key, schema);
  }
  return schema;
}

describeOnEachBackend('typescript client', (server) => {
  it('is generated from the document this server serves (npm run client:generate)', async () => {
    const served = await server().get('/openapi.json', { token: null });
    assert.equal(served.status, 200);
    const expected = await renderOnce(served.body);
    const committed = await readFile(CLIENT_SCHEMA_FILE, 'utf8');
    assert.ok(
      committed === expected,
      `${relativeToRepository(CLIENT_SCHEMA_FILE)} is not what the served document gives ` +
        `(${firstDifference(expected, committed)}); run npm run client:generate`,
    );
  });

  describe('runs the README walk-through', () => {
    const domain = { client_id: 'client-1', domain_id: 'south_australia' };
    const version = { model_id: 'example-model', version: '2.0.0' };
    let pie: PieClient;
    let jobId: string;

    it('registers a tenant, a model version with the worker handler and an assignment', async () => {
      pie = createPieClient({ baseUrl: server().url, token: server().adminToken });
      const client = orThrow(
        await pie.PUT('/v2/clients/{client_id}', {
          params: { path: { client_id: domain.client_id } },
          body: { name: 'Adelaide Metro' },
        }),
      );
      assert.equal(client.name, 'Adelaide Metro');
      orThrow(
        await pie.PUT('/v2/clients/{client_id}/domains/{domain_id}', {
          params: { path: domain },
          body: {},
        }),
      );
      orThrow(
        await pie.PUT('/v2/models/{model_id}', {
          params: { path: { model_id: version.model_id } },
          body: { description: 'Service delay' },
        }),
      );
      const registered = orThrow(
        await pie.PUT('/v2/models/{model_id}/versions/{version}', {
          params: { path: version },
          body: {
            features: [
              { name: 'route', type: 'string', required: true },
              { name: 'capacity', type: 'integer', default: 60 },
              { name: 'mode', type: 'enum', values: ['bus', 'tram', 'train'] },
            ],
            job_types: ['inference', 'training'],
          },
        }),
      );
      assert.equal(registered.handler.type, 'worker');

      const refused = await pie.PUT('/v2/models/{model_id}/versions/{version}', {
        params: { path: version },
        body: { features: [{ name: 'route', type: 'integer' }] },
      });
      assert.equal(refused.response.status, 409);
      assert.throws(() => orThrow(refused), PieApiError);

      orThrow(
        await pie.PUT('/v2/clients/{client_id}/domains/{domain_id}/services/{service_id}', {
          params: { path: { ...domain, service_id: 'service-1' } },
          body: { provided_features: { route: 'route-a', mode: 'bus' } },
        }),
      );
      orThrow(
        await pie.PUT('/v2/clients/{client_id}/domains/{domain_id}/assignments/{key}', {
          params: { path: { ...domain, key: 'default' } },
          body: { model_id: version.model_id, model_version: version.version },
        }),
      );
      const service = orThrow(
        await pie.GET('/v2/clients/{client_id}/domains/{domain_id}/services/{service_id}', {
          params: { path: { ...domain, service_id: 'service-1' } },
        }),
      );
      assert.deepEqual(service.resolved_features, { route: 'route-a', capacity: 60, mode: 'bus' });
    });

    it('inits the services and runs a job, which waits for a worker', async () => {
      const init = orThrow(
        await pie.POST('/v2/clients/{client_id}/domains/{domain_id}/services/init', {
          params: { path: domain, header: { 'idempotency-key': 'init-1' } },
        }),
      );
      assert.deepEqual(init.dispatched_services, ['service-1']);
      const run = orThrow(
        await pie.POST(
          '/v2/clients/{client_id}/domains/{domain_id}/service/{service_id}/assignments/{key}/jobs',
          {
            params: { path: { ...domain, service_id: 'service-1', key: 'default' } },
            body: { job_type: 'inference', input: { horizon_min: 30 } },
          },
        ),
      );
      jobId = run.job_id;
      const jobs = [];
      for await (const job of listAll(pie, '/v2/clients/{client_id}/domains/{domain_id}/jobs', {
        path: domain,
        query: { limit: 1 },
      })) {
        jobs.push(job);
      }
      assert.equal(jobs.length, 2, 'the init job and the run job, one page each');
      assert.ok(jobs.every((job) => job.status === 'queued'));
    });

    it('claims the job as a worker, completes it with its callback token, reads it back', async () => {
      const claimed = orThrow(
        await pie.POST('/v2/models/{model_id}/versions/{version}/jobs/claim', {
          params: { path: version },
          body: { worker_id: 'worker-1', max_jobs: 10 },
        }),
      );
      const envelope = claimed.jobs.find((job) => job.job_id === jobId);
      assert.ok(envelope, `job ${jobId} was not claimed`);
      assert.deepEqual(envelope.features, { route: 'route-a', capacity: 60, mode: 'bus' });

      // The worker speaks for this job's attempt only, with the token that came with it.
      const handler = createPieClient({ baseUrl: server().url, token: envelope.callback.token });
      const completed = orThrow(
        await handler.POST('/v2/models/{model_id}/versions/{version}/jobs/{job_id}/complete', {
          params: { path: { ...version, job_id: jobId } },
          body: { status: 'success', output: { predictions: 's3://bucket/p.json' } },
        }),
      );
      assert.equal(completed.status, 'success');

      const job = orThrow(
        await pie.GET('/v2/clients/{client_id}/domains/{domain_id}/jobs/{job_id}', {
          params: { path: { ...domain, job_id: jobId } },
        }),
      );
      assert.equal(job.status, 'success');
      assert.deepEqual(job.output, { predictions: 's3://bucket/p.json' });
    });
  });
});

/**
 * The committed schema file gives real types: a Job whose status is not one of the statuses
 * does not compile. Checked on a few lines in memory, not on the repository.
 */
describe('typescript client types', () => {
  const CLIENT_DIRECTORY = fileURLToPath(new URL('../../clients/typescript/', import.meta.url));
  const ROUTE_JOB = `paths['/v2/clients/{client_id}/domains/{domain_id}/jobs/{job_id}']['get']['responses'][200]['content']['application/json']`;
  const NAMED_JOB = `components['schemas']['Job']`;

  /** Gives `job` the type `jobType`, then builds a Job from it with `status` (line 6). */
  const jobProgram = (jobType: string, status: string) => `
import type { components, paths } from './src/schema.js';
export type Documents = [components, paths];
type Job = ${jobType};
declare const job: Job;
export const built: Job = { ...job, status: ${JSON.stringify(status)} };
export const read: Job['status'] = built.status;
`;

  let snippets: SnippetProgram;
  before(() => {
    snippets = new SnippetProgram(CLIENT_DIRECTORY, {
      'route-ok.ts': jobProgram(ROUTE_JOB, 'success'),
      'route-banana.ts': jobProgram(ROUTE_JOB, 'banana'),
      'named-ok.ts': jobProgram(NAMED_JOB, 'success'),
      'named-banana.ts': jobProgram(NAMED_JOB, 'banana'),
      'reexported-ok.ts': `import type { components } from './src/schema.js';
import type { Job, JobStatus } from './src/index.js';
declare const job: Job;
export const status: JobStatus = job.status;
export const same: components['schemas']['Job'] = { ...job, status: 'cancelled' };
`,
    });
  });

  /** The one diagnostic a Job with status "banana" must give: 2322 on its status, line 6. */
  function assertBananaRefused(diagnostics: Diagnostic[]) {
    assert.equal(diagnostics.length, 1, JSON.stringify(diagnostics, null, 2));
    const [refusal] = diagnostics;
    assert.equal(refusal?.code, 2322, refusal?.message);
    assert.equal(refusal.line, 6);
    assert.equal(refusal.text, 'status');
    assert.match(refusal.message, /Type '"banana"' is not assignable to type '[^']*"queued"/);
  }

  it('compiles a Job taken from the job route, and refuses status "banana"', () => {
    assert.deepEqual(snippets.diagnostics('route-ok.ts'), []);
    assertBananaRefused(snippets.diagnostics('route-banana.ts'));
  });

  it('compiles components["schemas"]["Job"] and the re-exported Job, refuses "banana"', () => {
    assert.deepEqual(snippets.diagnostics('named-ok.ts'), []);
    assert.deepEqual(snippets.diagnostics('reexported-ok.ts'), []);
    assertBananaRefused(snippets.diagnostics('named-banana.ts'));
  });
});
