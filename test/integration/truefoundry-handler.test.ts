import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { DeliveryContext } from '../../src/dispatch/handlers/handler-adapter.js';
import { MAX_RETRY_AFTER_MS } from '../../src/dispatch/handlers/retry-after.js';
import type { TrueFoundryHandler } from '../../src/dispatch/handlers/truefoundry/control-plane.js';
import { readTrueFoundryRun } from '../../src/dispatch/handlers/truefoundry/run-status.js';
import { terminateTrueFoundryRun } from '../../src/dispatch/handlers/truefoundry/terminate.js';
import { triggerTrueFoundryRun } from '../../src/dispatch/handlers/truefoundry/trigger.js';
import type { DeliveryOutcome, Envelope } from '../../src/domain/delivery.js';
import { FakeTrueFoundry } from '../helpers/fake-truefoundry.js';
import { closeServer, freePort, listenOnLoopback } from '../helpers/loopback.js';

const TOKEN_ENV = 'PIE_TEST_TFY_TOKEN';

function envelope(overrides: Partial<Envelope> = {}): Envelope {
  return {
    job_id: 'job-7f3a',
    job_type: 'default',
    attempt: 1,
    model_id: 'churn',
    model_version: '3',
    client_id: 'client-1',
    domain_id: 'domain-1',
    service_id: 'service-1',
    assignment_id: 'assignment-1',
    assignment_key: 'default',
    config: { threshold: 0.5, note: 'quotes " and {{braces}} survive' },
    input: { rows: [1, 2, 3], nested: { ok: true } },
    features: null,
    trigger: null,
    deadline: '2030-01-01T00:00:00.000Z',
    callback: {
      url: 'http://pie.test/v2/models/churn/versions/3/jobs/job-7f3a/complete',
      heartbeat_url: 'http://pie.test/v2/models/churn/versions/3/jobs/job-7f3a/heartbeat',
      token: 'callback-token',
    },
    ...overrides,
  };
}

function ctx(signal: AbortSignal = new AbortController().signal): DeliveryContext {
  return { signal };
}

function assertKind<K extends DeliveryOutcome['kind']>(
  outcome: DeliveryOutcome,
  kind: K,
): asserts outcome is Extract<DeliveryOutcome, { kind: K }> {
  assert.equal(outcome.kind, kind, JSON.stringify(outcome));
}

describe('the truefoundry handler', () => {
  let fake: FakeTrueFoundry;
  let env: NodeJS.ProcessEnv;
  const byDeployment = (): TrueFoundryHandler => ({
    type: 'truefoundry',
    base_url: fake.url,
    deployment_id: 'dep-123',
    token_env: TOKEN_ENV,
  });
  const byApplication = (): TrueFoundryHandler => ({
    type: 'truefoundry',
    base_url: `${fake.url}/`,
    application_id: 'app-456',
    token_env: TOKEN_ENV,
  });
  const options = () => ({ timeoutMs: 2000, env });

  before(async () => {
    fake = await FakeTrueFoundry.start();
  });
  after(async () => {
    await fake.close();
  });
  beforeEach(() => {
    env = { [TOKEN_ENV]: fake.token };
    fake.runs.length = 0;
    fake.requests.length = 0;
    fake.terminations.length = 0;
  });

  describe('triggering a run', () => {
    it('sends deploymentId and the exact envelope, and keeps the jobRunName', async () => {
      const sent = envelope();
      const outcome = await triggerTrueFoundryRun(sent, byDeployment(), ctx(), options());
      assertKind(outcome, 'handed-over');
      assert.equal(fake.runs.length, 1);
      const run = fake.runs[0];
      assert.ok(run);
      assert.equal(outcome.reference, run.name);
      assert.equal(run.triggeredBy, 'deploymentId');
      assert.deepEqual(Object.keys(run.body).sort(), ['deploymentId', 'input']);
      assert.equal(run.body.deploymentId, 'dep-123');
      assert.deepEqual(run.body.input, { params: { pie_envelope: JSON.stringify(sent) } });
      assert.deepEqual(run.envelope, sent);
      assert.deepEqual(fake.requests[0], {
        method: 'POST',
        path: '/api/svc/v1/jobs/trigger',
        authorization: `Bearer ${fake.token}`,
      });
    });

    it('sends applicationId when the handler names an application', async () => {
      const sent = envelope({ attempt: 2, features: { age: 41 } });
      const outcome = await triggerTrueFoundryRun(sent, byApplication(), ctx(), options());
      assertKind(outcome, 'handed-over');
      const run = fake.runs[0];
      assert.ok(run);
      assert.equal(outcome.reference, run.name);
      assert.equal(run.triggeredBy, 'applicationId');
      assert.deepEqual(Object.keys(run.body).sort(), ['applicationId', 'input']);
      assert.equal(run.body.applicationId, 'app-456');
      assert.deepEqual(run.envelope, sent);
    });

    it('keeps a path prefix in base_url', async () => {
      const prefixed = await startPrefixProxy(fake.url, '/tfy');
      try {
        const handler = { ...byDeployment(), base_url: `${prefixed.url}/tfy` };
        const outcome = await triggerTrueFoundryRun(envelope(), handler, ctx(), options());
        assertKind(outcome, 'handed-over');
        assert.deepEqual(prefixed.paths, ['/tfy/api/svc/v1/jobs/trigger']);
      } finally {
        await prefixed.close();
      }
    });

    it('fails without a request when the token variable is not set', async () => {
      const outcome = await triggerTrueFoundryRun(envelope(), byDeployment(), ctx(), {
        timeoutMs: 2000,
        env: {},
      });
      assertKind(outcome, 'fail');
      assert.equal(outcome.error.code, 'token_missing');
      assert.match(outcome.error.message, new RegExp(TOKEN_ENV));
      assert.equal(fake.requests.length, 0);
    });

    it('fails as unauthorized on a wrong token, without showing the token', async () => {
      env = { [TOKEN_ENV]: 'wrong-token-value' };
      const outcome = await triggerTrueFoundryRun(envelope(), byDeployment(), ctx(), options());
      assertKind(outcome, 'fail');
      assert.equal(outcome.error.code, 'unauthorized');
      assert.equal(outcome.error.status, 401);
      assert.match(outcome.error.message, new RegExp(TOKEN_ENV));
      assert.doesNotMatch(JSON.stringify(outcome), /wrong-token-value/);
      assert.equal(fake.runs.length, 0);
    });

    it('retries on a 5xx, and succeeds once the control plane recovers', async () => {
      fake.failNextTriggers(1, 500);
      const first = await triggerTrueFoundryRun(envelope(), byDeployment(), ctx(), options());
      assertKind(first, 'retry');
      assert.equal(first.error.code, 'server_error');
      assert.equal(first.error.status, 500);
      assert.equal(first.retryAfterMs, undefined);
      const second = await triggerTrueFoundryRun(envelope(), byDeployment(), ctx(), options());
      assertKind(second, 'handed-over');
      assert.equal(fake.runs.length, 1);
    });

    it('retries on a 429 after Retry-After, capped at an hour', async () => {
      fake.failNextTriggers(1, 429, { headers: { 'retry-after': '7' } });
      fake.failNextTriggers(1, 429, { headers: { 'retry-after': '86400' } });
      const at = new Date(Date.now() + 120_000).toUTCString();
      fake.failNextTriggers(1, 503, { headers: { 'retry-after': at } });

      const seconds = await triggerTrueFoundryRun(envelope(), byDeployment(), ctx(), options());
      assertKind(seconds, 'retry');
      assert.equal(seconds.error.code, 'rate_limited');
      assert.equal(seconds.retryAfterMs, 7000);

      const capped = await triggerTrueFoundryRun(envelope(), byDeployment(), ctx(), options());
      assertKind(capped, 'retry');
      assert.equal(capped.retryAfterMs, MAX_RETRY_AFTER_MS);

      const dated = await triggerTrueFoundryRun(envelope(), byDeployment(), ctx(), options());
      assertKind(dated, 'retry');
      assert.ok(dated.retryAfterMs !== undefined);
      assert.ok(dated.retryAfterMs > 100_000 && dated.retryAfterMs <= 120_000);
    });

    it('fails on another 4xx with the status and at most 512 characters of the body', async () => {
      fake.failNextTriggers(1, 404, { body: `no such deployment ${'x'.repeat(2000)}` });
      const outcome = await triggerTrueFoundryRun(envelope(), byDeployment(), ctx(), options());
      assertKind(outcome, 'fail');
      assert.equal(outcome.error.code, 'rejected');
      assert.equal(outcome.error.status, 404);
      assert.equal(typeof outcome.error.body, 'string');
      assert.equal((outcome.error.body as string).length, 512);
      assert.match(outcome.error.body as string, /^no such deployment/);
    });

    it('does not follow a redirect', async () => {
      fake.failNextTriggers(1, 307, { headers: { location: `${fake.url}/elsewhere` } });
      const outcome = await triggerTrueFoundryRun(envelope(), byDeployment(), ctx(), options());
      assertKind(outcome, 'fail');
      assert.equal(outcome.error.code, 'redirect');
      assert.equal(outcome.error.status, 307);
      assert.deepEqual(
        fake.requests.map((r) => r.path),
        ['/api/svc/v1/jobs/trigger'],
      );
    });

    it('fails on a 2xx without a jobRunName', async () => {
      fake.failNextTriggers(1, 200, { body: JSON.stringify({ message: 'Job triggered' }) });
      const outcome = await triggerTrueFoundryRun(envelope(), byDeployment(), ctx(), options());
      assertKind(outcome, 'fail');
      assert.equal(outcome.error.code, 'bad_response');
    });

    it('retries when the control plane does not answer in time', async () => {
      fake.delayNextTriggers(1, 5000);
      const outcome = await triggerTrueFoundryRun(envelope(), byDeployment(), ctx(), {
        timeoutMs: 150,
        env,
      });
      assertKind(outcome, 'retry');
      assert.equal(outcome.error.code, 'request_timeout');
    });

    it('retries when the control plane cannot be reached', async () => {
      const handler = { ...byDeployment(), base_url: await closedPortUrl() };
      const outcome = await triggerTrueFoundryRun(envelope(), handler, ctx(), options());
      assertKind(outcome, 'retry');
      assert.equal(outcome.error.code, 'connection_error');
    });

    it('fails with timeout when the deadline passes, and retries after a shutdown', async () => {
      fake.delayNextTriggers(2, 5000);
      const deadline = new AbortController();
      const pending = triggerTrueFoundryRun(envelope(), byDeployment(), ctx(deadline.signal), {
        timeoutMs: 10_000,
        env,
      });
      setTimeout(() => deadline.abort({ code: 'timeout', message: 'deadline passed' }), 50);
      const timedOut = await pending;
      assertKind(timedOut, 'fail');
      assert.equal(timedOut.error.code, 'timeout');

      const shutdown = new AbortController();
      const stopping = triggerTrueFoundryRun(envelope(), byDeployment(), ctx(shutdown.signal), {
        timeoutMs: 10_000,
        env,
      });
      setTimeout(() => shutdown.abort(new Error('shutting down')), 50);
      const stopped = await stopping;
      assertKind(stopped, 'retry');
      assert.equal(stopped.error.code, 'aborted');
    });
  });

  describe('reading a run', () => {
    it('maps statuses to active, succeeded and failed', async () => {
      const outcome = await triggerTrueFoundryRun(envelope(), byApplication(), ctx(), options());
      assertKind(outcome, 'handed-over');
      const name = outcome.reference ?? '';

      // The run names its deployment, which terminating it needs.
      const deploymentId = FakeTrueFoundry.deploymentIdOf('app-456');
      const created = await readTrueFoundryRun(byApplication(), name, options());
      assert.deepEqual(created, { state: 'active', status: 'CREATED', deploymentId });

      const expected: [string, string][] = [
        ['SCHEDULED', 'active'],
        ['RUNNING', 'active'],
        ['TERMINATION_REQUESTED', 'active'],
        ['TERMINATING', 'active'],
        ['UNKNOWN', 'active'],
        ['SOMETHING_NEW', 'active'],
        ['FINISHED', 'succeeded'],
        ['SUCCEEDED', 'succeeded'],
        ['FAILED', 'failed'],
        ['TERMINATED', 'failed'],
      ];
      for (const [status, state] of expected) {
        fake.setRunStatus(name, status);
        const read = await readTrueFoundryRun(byApplication(), name, options());
        assert.deepEqual(read, { state, status, deploymentId }, status);
      }
      assert.ok(
        fake.requests
          .filter((r) => r.method === 'GET')
          .every((r) => r.path === `/api/svc/v1/jobs/app-456/runs/${name}`),
      );
    });

    it("reports a failed run's error and exit code", async () => {
      const outcome = await triggerTrueFoundryRun(envelope(), byApplication(), ctx(), options());
      assertKind(outcome, 'handed-over');
      const name = outcome.reference ?? '';
      fake.setRunStatus(name, 'FAILED', { error: 'OOMKilled', exitCode: 137 });
      const read = await readTrueFoundryRun(byApplication(), name, options());
      assert.deepEqual(read, {
        state: 'failed',
        status: 'FAILED',
        error: 'OOMKilled',
        exitCode: 137,
        deploymentId: FakeTrueFoundry.deploymentIdOf('app-456'),
      });
    });

    it('needs the application id for a handler configured by deployment', async () => {
      const outcome = await triggerTrueFoundryRun(envelope(), byDeployment(), ctx(), options());
      assertKind(outcome, 'handed-over');
      const name = outcome.reference ?? '';
      const before = fake.requests.length;

      const without = await readTrueFoundryRun(byDeployment(), name, options());
      assert.equal(without.state, 'unknown');
      assert.equal(without.state === 'unknown' && without.error.code, 'application_id_required');
      assert.equal(fake.requests.length, before);

      fake.setRunStatus(name, 'RUNNING');
      const withId = await readTrueFoundryRun(byDeployment(), name, {
        ...options(),
        applicationId: FakeTrueFoundry.applicationIdOf('dep-123'),
      });
      assert.deepEqual(withId, { state: 'active', status: 'RUNNING', deploymentId: 'dep-123' });
    });

    it('is unknown on a transport error, a missing run, a wrong or missing token', async () => {
      const unreachable = { ...byApplication(), base_url: await closedPortUrl() };
      const transport = await readTrueFoundryRun(unreachable, 'run-1', options());
      assert.equal(transport.state, 'unknown');
      assert.equal(transport.state === 'unknown' && transport.error.code, 'connection_error');

      const missing = await readTrueFoundryRun(byApplication(), 'no-such-run', options());
      assert.equal(missing.state === 'unknown' && missing.error.code, 'run_not_found');

      env = { [TOKEN_ENV]: 'wrong-token-value' };
      const refused = await readTrueFoundryRun(byApplication(), 'run-1', options());
      assert.equal(refused.state === 'unknown' && refused.error.code, 'unauthorized');
      assert.doesNotMatch(JSON.stringify(refused), /wrong-token-value/);

      const noToken = await readTrueFoundryRun(byApplication(), 'run-1', {
        timeoutMs: 2000,
        env: {},
      });
      assert.equal(noToken.state === 'unknown' && noToken.error.code, 'token_missing');
    });
  });

  describe('terminating a run', () => {
    it('calls terminate with the deployment and the run name', async () => {
      const outcome = await triggerTrueFoundryRun(envelope(), byDeployment(), ctx(), options());
      assertKind(outcome, 'handed-over');
      const name = outcome.reference ?? '';
      const signal = new AbortController().signal;
      const result = await terminateTrueFoundryRun(byDeployment(), name, signal, options());
      assert.deepEqual(result, { delivered: true });
      assert.deepEqual(fake.terminations, [{ deploymentId: 'dep-123', jobRunName: name }]);
      assert.equal(fake.run(name).status, 'TERMINATED');
      assert.deepEqual(fake.requests.at(-1), {
        method: 'POST',
        path: '/api/svc/v1/jobs/terminate',
        authorization: `Bearer ${fake.token}`,
      });
    });

    it("reads the run's deployment first for a handler named by application", async () => {
      const outcome = await triggerTrueFoundryRun(envelope(), byApplication(), ctx(), options());
      assertKind(outcome, 'handed-over');
      const name = outcome.reference ?? '';
      const signal = new AbortController().signal;
      const result = await terminateTrueFoundryRun(byApplication(), name, signal, options());
      assert.deepEqual(result, { delivered: true });
      assert.deepEqual(
        fake.requests.slice(-2).map((r) => `${r.method} ${r.path}`),
        [`GET /api/svc/v1/jobs/app-456/runs/${name}`, 'POST /api/svc/v1/jobs/terminate'],
      );
      assert.deepEqual(fake.terminations, [
        { deploymentId: FakeTrueFoundry.deploymentIdOf('app-456'), jobRunName: name },
      ]);
    });

    it('reports a run it cannot find, a missing token or an unreachable plane as failed', async () => {
      const signal = new AbortController().signal;
      const missing = await terminateTrueFoundryRun(byDeployment(), 'no-run', signal, options());
      assert.equal(!missing.delivered && missing.error.code, 'rejected');
      const unread = await terminateTrueFoundryRun(byApplication(), 'no-run', signal, options());
      assert.equal(!unread.delivered && unread.error.code, 'run_not_found');
      const noToken = await terminateTrueFoundryRun(byDeployment(), 'run-1', signal, {
        timeoutMs: 2000,
        env: {},
      });
      assert.equal(!noToken.delivered && noToken.error.code, 'token_missing');
      const unreachable = { ...byDeployment(), base_url: await closedPortUrl() };
      const down = await terminateTrueFoundryRun(unreachable, 'run-1', signal, options());
      assert.equal(!down.delivered && down.error.code, 'connection_error');
      assert.equal(fake.terminations.length, 0);
    });
  });
});

/** A URL on 127.0.0.1 where nothing listens. */
async function closedPortUrl(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`;
}

/** Forwards `{prefix}/...` to `target/...`, recording the paths it saw. */
async function startPrefixProxy(target: string, prefix: string) {
  const paths: string[] = [];
  const server = http.createServer((req, res) => {
    paths.push(req.url ?? '');
    const path = (req.url ?? '').startsWith(prefix) ? (req.url ?? '').slice(prefix.length) : '/';
    const upstream = http.request(
      `${target}${path}`,
      { method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    req.pipe(upstream);
  });
  const port = await listenOnLoopback(server);
  return {
    url: `http://127.0.0.1:${port}`,
    paths,
    close: () => closeServer(server),
  };
}
