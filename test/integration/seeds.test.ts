import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { loadOrCreateJwtSecret } from '../../src/auth/jwt-secret.js';
import { loadConfig } from '../../src/config/config.js';
import { testBackends } from '../helpers/backends.js';
import { readSeedCurl, type SeedCurl } from '../helpers/seed-curls.js';
import { TestServer } from '../helpers/test-server.js';

const execFileAsync = promisify(execFile);

/**
 * The acceptance test of the seed routes: each curl command printed in seeds 000 to 003, with
 * the host replaced by a local server and <token> by a token from `pie token`, run with the
 * real curl against resources set up as the seeds' path examples name them.
 */
// curl runs as a child process, asynchronously: the server under test shares this event loop.
async function runCurl(command: SeedCurl, baseUrl: string, token: string) {
  const url = command.url.replace(/^https:\/\/[^/]+/, baseUrl);
  const args = ['-sS', '--request', command.method, '--url', url, '-w', '\n%{http_code}'];
  for (const header of command.headers) args.push('--header', header.replace('<token>', token));
  if (command.data !== undefined) args.push('--data', command.data);
  const result = await execFileAsync('curl', args, { encoding: 'utf8', timeout: 30_000 });
  const lines = result.stdout.trimEnd().split('\n');
  const status = Number(lines.pop());
  return { status, body: JSON.parse(lines.join('\n')) as Record<string, unknown> };
}

for (const backend of testBackends()) {
  describe(`seed curl commands [${backend.name}]`, () => {
    let server: TestServer;
    let token = '';
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pie-seeds-'));

    before(async () => {
      const config = loadConfig({ PIE_DATA_DIR: dataDir });
      server = await TestServer.start(backend, {
        kind: 'secret',
        secret: loadOrCreateJwtSecret(config),
      });
      const minted = spawnSync(
        process.execPath,
        [
          '--import',
          'tsx',
          'src/cli/main.ts',
          'token',
          '--scope',
          'assignments:write jobs:write jobs:complete',
        ],
        { encoding: 'utf8', env: { ...process.env, PIE_DATA_DIR: dataDir } },
      );
      assert.equal(minted.status, 0, minted.stderr);
      token = minted.stdout.trim();

      const setup: [string, string, unknown][] = [
        ['PUT', '/v2/clients/client-1', { name: 'Seed client' }],
        ['PUT', '/v2/clients/client-1/domains/south_australia', {}],
        ['PUT', '/v2/models/example-model', {}],
        [
          'PUT',
          '/v2/models/example-model/versions/1',
          { features: [{ name: 'route', type: 'string', required: true }] },
        ],
        [
          'PUT',
          '/v2/models/example-model/versions/2.0.0',
          {
            features: [
              { name: 'route', type: 'string', required: true },
              { name: 'capacity', type: 'integer', default: 60 },
            ],
          },
        ],
        [
          'PUT',
          '/v2/clients/client-1/domains/south_australia/services/service-1',
          { provided_features: { route: 'route-1' } },
        ],
        [
          'PUT',
          '/v2/clients/client-1/domains/south_australia/services/svc-001',
          { provided_features: { route: 'old' } },
        ],
        [
          'PUT',
          '/v2/clients/client-1/domains/south_australia/assignments/default',
          { model_id: 'example-model', model_version: '1' },
        ],
      ];
      for (const [method, url, body] of setup) {
        const response = await server.call(method, url, { body });
        assert.ok(response.status < 300, `${method} ${url}: ${JSON.stringify(response.body)}`);
      }
      // Seed 002 completes job 123456789012 of example-model version 1: make that job exist.
      const job = await server.post(
        '/v2/clients/client-1/domains/south_australia/service/svc-001/assignments/default/jobs',
        {},
      );
      await server.db.query(`update jobs set job_id = '123456789012' where job_id = $1`, [
        job.body.job_id,
      ]);
    });

    after(async () => {
      await server.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    });

    it('000: runs a job on a service model assignment (202 with a job id)', async () => {
      const answer = await runCurl(readSeedCurl('000_072d325741a0793e.txt'), server.url, token);
      assert.equal(answer.status, 202, JSON.stringify(answer.body));
      assert.match(String(answer.body['job_id']), /^[0-9]{12}$/);
    });

    it('001: creates the service assignment revision', async () => {
      const answer = await runCurl(readSeedCurl('001_2b0877d1aa624c61.txt'), server.url, token);
      assert.equal(answer.status, 201, JSON.stringify(answer.body));
      assert.equal(answer.body['status'], 'active');
      assert.equal(answer.body['model_version'], '2.0.0');
      assert.equal(answer.body['service_id'], 'service-1');
      const svc = await server.get('/v2/clients/client-1/domains/south_australia/services/svc-001');
      assert.deepEqual(svc.body.provided_features, { route: 'route-a' });
    });

    it('002: completes job 123456789012', async () => {
      const answer = await runCurl(readSeedCurl('002_1453c3afe5dbbb6a.txt'), server.url, token);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      assert.deepEqual(answer.body, {
        job_id: '123456789012',
        model_id: 'example-model',
        model_version: '1',
        status: 'success',
        triggered_events: [],
      });
    });

    it('003: re-initialises every non-departed service', async () => {
      const answer = await runCurl(readSeedCurl('003_60f69446520605e8.txt'), server.url, token);
      assert.equal(answer.status, 202, JSON.stringify(answer.body));
      // The seed's answer, and the batch its jobs make (SPEC 10 adds `batch_id` beside it).
      const { batch_id, ...seedAnswer } = answer.body as { batch_id: unknown };
      assert.deepEqual(seedAnswer, { dispatched_services: ['service-1', 'svc-001'] });
      assert.match(String(batch_id), /^[0-9a-f]{8}-[0-9a-f-]{27}$/);
    });
  });
}
