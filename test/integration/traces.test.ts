import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SpanKind, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { Envelope } from '../../src/domain/delivery.js';
import { loadConfig } from '../../src/config/config.js';
import { startTracing, type Tracing } from '../../src/observability/tracing-sdk.js';
import { tracingOn } from '../../src/observability/tracing.js';
import { expectBody } from '../helpers/assertions.js';
import { RECEIVER_SECRET } from '../helpers/completing-receiver.js';
import { createTenant, runJob, type Tenant } from '../helpers/fixtures.js';
import { pieEnv, startPie } from '../helpers/pie-process.js';
import { closeServer, listenOnLoopback } from '../helpers/loopback.js';
import { TestServer } from '../helpers/test-server.js';
import { testBackends } from '../helpers/backends.js';
import { waitFor, waitForValue } from '../helpers/wait.js';
import { makeTickDue } from '../helpers/schedules.js';
import { fireDueSchedules } from '../../src/usecases/fire-schedules.usecase.js';

/**
 * OpenTelemetry traces (SPEC 12): one run-job → push dispatch → delivery to an http handler →
 * the handler's completion is one trace; with tracing off nothing is traced and handlers see
 * no trace context. Tracing is process-wide, so each backend's suite first runs a server with
 * tracing off, then starts the SDK with an in-memory exporter and a second server.
 */

const RUN_JOB_ROUTE =
  'POST /v2/clients/:client_id/domains/:domain_id/service/:service_id/assignments/:key/jobs';
const COMPLETE_ROUTE = 'POST /v2/models/:model_id/versions/:version/jobs/:job_id/complete';

/** What the handler received: the envelope and the traceparent header beside it. */
interface Delivery {
  envelope: Envelope;
  header: string | undefined;
}

/**
 * An http model handler: accepts each delivery (202), then completes the job through its
 * callback, sending back the `traceparent` it received unless told not to.
 */
class TracingHandler {
  readonly deliveries: Delivery[] = [];
  echoTraceparent = true;
  url = '';
  private readonly server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      const envelope = JSON.parse(body) as Envelope;
      const header = request.headers['traceparent'];
      this.deliveries.push({ envelope, header: typeof header === 'string' ? header : undefined });
      response.writeHead(202).end();
      void this.complete(envelope);
    });
  });

  /** Job ids restart with each database: a job is known by its client too. */
  deliveryOf(tenant: Tenant, jobId: string): Delivery | undefined {
    return this.deliveries.find(
      (d) => d.envelope.client_id === tenant.clientId && d.envelope.job_id === jobId,
    );
  }

  async start() {
    this.url = `http://127.0.0.1:${await listenOnLoopback(this.server)}/hook`;
  }

  private async complete(envelope: Envelope) {
    const headers: Record<string, string> = {
      authorization: `Bearer ${envelope.callback.token}`,
      'content-type': 'application/json',
    };
    if (this.echoTraceparent && envelope.traceparent !== undefined) {
      headers['traceparent'] = envelope.traceparent;
    }
    const response = await fetch(envelope.callback.url, {
      method: 'POST',
      headers,
      body: JSON.stringify({ status: 'success', output: { ok: true } }),
    });
    await response.arrayBuffer();
  }

  close() {
    return closeServer(this.server);
  }
}

async function httpTenant(server: TestServer, handler: TracingHandler): Promise<Tenant> {
  return createTenant(server, {
    version: { handler: { type: 'http', url: handler.url, secret: RECEIVER_SECRET } },
  });
}

async function jobStatus(server: TestServer, tenant: Tenant, jobId: string): Promise<string> {
  return expectBody<{ status: string }>(await server.get(`${tenant.domainPath}/jobs/${jobId}`), 200)
    .status;
}

async function storedTraceparent(server: TestServer, jobId: string): Promise<string | null> {
  const { rows } = await server.db.query<{ traceparent: string | null }>(
    'select traceparent from jobs where job_id = $1',
    [jobId],
  );
  return rows[0]!.traceparent;
}

function one(spans: ReadableSpan[], what: string, match: (span: ReadableSpan) => boolean) {
  const found = spans.filter(match);
  assert.equal(found.length, 1, `one ${what} span, got ${found.map((s) => s.name).join(', ')}`);
  return found[0]!;
}

const spanId = (span: ReadableSpan) => span.spanContext().spanId;
const traceId = (span: ReadableSpan) => span.spanContext().traceId;

for (const backend of testBackends()) {
  describe(`traces [${backend.name}]`, () => {
    const handler = new TracingHandler();
    before(() => handler.start());
    after(() => handler.close());

    it('with no OTEL_* variables, starts no SDK and passes no trace context to handlers', async () => {
      // `pie serve` starts the SDK only for config.tracing (src/cli/main.ts).
      assert.equal(loadConfig({}).tracing, undefined);
      assert.equal(tracingOn(), false);
      const server = await TestServer.start(backend, undefined, {});
      try {
        const tenant = await httpTenant(server, handler);
        const jobId = await runJob(server, tenant);
        await waitFor(
          'the job to succeed',
          async () => (await jobStatus(server, tenant, jobId)) === 'success',
          10_000,
        );
        const delivery = handler.deliveryOf(tenant, jobId);
        assert.ok(delivery, 'the handler got the job');
        assert.equal('traceparent' in delivery.envelope, false);
        assert.equal(delivery.header, undefined);
        assert.equal(await storedTraceparent(server, jobId), null);
        // No SDK is registered: any span made anywhere in the process records nothing, so
        // nothing can be exported.
        assert.equal(trace.getTracer('probe').startSpan('probe').isRecording(), false);
      } finally {
        await server.close();
      }
    });

    describe('with the SDK started and an in-memory exporter', () => {
      const exporter = new InMemorySpanExporter();
      let tracing: Tracing;
      let server: TestServer;
      let tenant: Tenant;
      before(async () => {
        tracing = startTracing({ immediate: [exporter] });
        server = await TestServer.start(backend, undefined, {});
        tenant = await httpTenant(server, handler);
      });
      after(async () => {
        await server.close();
        await tracing.shutdown();
      });

      /** The finished spans about one job, once its completion's request span has ended. */
      async function spansOf(jobId: string): Promise<ReadableSpan[]> {
        return waitForValue(
          "the job's spans",
          () => {
            const spans = exporter.getFinishedSpans();
            const complete = spans.find(
              (span) => span.name === 'pie.complete' && span.attributes['pie.job_id'] === jobId,
            );
            const request =
              complete && spans.find((span) => spanId(span) === complete.parentSpanContext?.spanId);
            return request === undefined ? undefined : spans;
          },
          10_000,
        );
      }

      it('one run-job, dispatch, delivery and completion make one trace', async () => {
        const jobId = await runJob(server, tenant);
        await waitFor(
          'the job to succeed',
          async () => (await jobStatus(server, tenant, jobId)) === 'success',
          10_000,
        );
        const spans = await spansOf(jobId);
        const ofJob = (span: ReadableSpan) => span.attributes['pie.job_id'] === jobId;

        const runRequest = one(
          spans,
          'run-job request',
          (span) =>
            span.name === RUN_JOB_ROUTE &&
            span.attributes['url.path'] ===
              `${tenant.domainPath}/service/service-1/assignments/default/jobs`,
        );
        const dispatch = one(spans, 'dispatch', (s) => s.name === 'pie.dispatch' && ofJob(s));
        const delivery = one(spans, 'delivery', (s) => s.name === 'pie.deliver http' && ofJob(s));
        const complete = one(spans, 'completion', (s) => s.name === 'pie.complete' && ofJob(s));
        const completeRequest = one(
          spans,
          'completion request',
          (span) => spanId(span) === complete.parentSpanContext?.spanId,
        );

        // One trace, started by the run-job request.
        const trace = traceId(runRequest);
        for (const span of [dispatch, delivery, completeRequest, complete]) {
          assert.equal(traceId(span), trace, `${span.name} is in the run-job's trace`);
        }
        assert.equal(runRequest.parentSpanContext, undefined, 'the request starts the trace');
        assert.equal(runRequest.kind, SpanKind.SERVER);
        assert.equal(runRequest.attributes['http.response.status_code'], 202);
        assert.equal(runRequest.attributes['http.route'], RUN_JOB_ROUTE.slice('POST '.length));

        // Request → dispatch (later, from the stored context) → delivery → the handler's
        // completion request → the completion.
        assert.equal(dispatch.parentSpanContext?.spanId, spanId(runRequest));
        assert.equal(delivery.parentSpanContext?.spanId, spanId(dispatch));
        assert.equal(delivery.kind, SpanKind.CLIENT);
        assert.equal(delivery.attributes['pie.delivery.outcome'], 'handed-over');
        assert.equal(dispatch.attributes['pie.attempt'], 1);
        assert.equal(completeRequest.name, COMPLETE_ROUTE);
        assert.equal(completeRequest.kind, SpanKind.SERVER);
        assert.equal(completeRequest.attributes['http.response.status_code'], 200);
        assert.equal(completeRequest.parentSpanContext?.spanId, spanId(delivery));
        assert.equal(complete.attributes['pie.completion.result'], 'completed');
        assert.deepEqual(complete.links, [], 'same trace: nothing to link');

        // What the handler was given: the delivery's context, in the envelope and the header.
        const given = handler.deliveryOf(tenant, jobId)!;
        const expected = `00-${trace}-${spanId(delivery)}-01`;
        assert.equal(given.envelope.traceparent, expected);
        assert.equal(given.header, expected);
        // And what the job keeps: the run-job request's.
        assert.equal(
          await storedTraceparent(server, jobId),
          `00-${trace}-${spanId(runRequest)}-01`,
        );
      });

      it("a completion without traceparent is its own trace, linked to the job's", async () => {
        handler.echoTraceparent = false;
        try {
          const jobId = await runJob(server, tenant);
          await waitFor(
            'the job to succeed',
            async () => (await jobStatus(server, tenant, jobId)) === 'success',
            10_000,
          );
          const spans = await spansOf(jobId);
          const complete = one(
            spans,
            'completion',
            (s) => s.name === 'pie.complete' && s.attributes['pie.job_id'] === jobId,
          );
          const stored = (await storedTraceparent(server, jobId))!;
          const jobTrace = stored.split('-')[1];
          assert.notEqual(traceId(complete), jobTrace);
          assert.deepEqual(
            complete.links.map((link) => [link.context.traceId, link.context.spanId]),
            [[jobTrace, stored.split('-')[2]]],
          );
        } finally {
          handler.echoTraceparent = true;
        }
      });

      it("jobs started by services init, a bulk retry and a schedule's tick carry their starter's trace", async () => {
        // A pull tenant: its jobs stay queued (no handler to push to), so a cancelled one stays so.
        const pull = await createTenant(server);
        const requestSpan = (route: string) =>
          waitForValue(
            `the span of ${route}`,
            () =>
              exporter
                .getFinishedSpans()
                .find(
                  (span) =>
                    span.name === route &&
                    String(span.attributes['url.path']).startsWith(pull.domainPath),
                ),
            10_000,
          );
        const storedOf = async (where: string, value: string) => {
          const { rows } = await server.db.query<{ traceparent: string | null }>(
            `select traceparent from jobs where client_id = $1 and ${where} = $2`,
            [pull.clientId, value],
          );
          return rows.map((row) => row.traceparent);
        };

        const init = expectBody<{ batch_id: string }>(
          await server.post(`${pull.domainPath}/services/init`),
          202,
        );
        const initSpan = await requestSpan(
          'POST /v2/clients/:client_id/domains/:domain_id/services/init',
        );
        const initJobs = await storedOf('batch_id', init.batch_id);
        assert.ok(initJobs.length > 0);
        for (const stored of initJobs) {
          assert.equal(stored, `00-${traceId(initSpan)}-${spanId(initSpan)}-01`);
        }

        const jobId = await runJob(server, pull);
        expectBody(await server.post(`${pull.domainPath}/jobs/${jobId}/cancel`), 200);
        const retried = expectBody<{ job_ids: string[] }>(
          await server.post(`${pull.domainPath}/jobs/retry`, { status: 'cancelled' }),
          202,
        );
        const retrySpan = await requestSpan(
          'POST /v2/clients/:client_id/domains/:domain_id/jobs/retry',
        );
        assert.equal(retried.job_ids.length, 1);
        assert.deepEqual(await storedOf('job_id', retried.job_ids[0]!), [
          `00-${traceId(retrySpan)}-${spanId(retrySpan)}-01`,
        ]);

        expectBody(
          await server.put(`${pull.domainPath}/schedules/nightly`, {
            cron: '0 0 1 1 *',
            action: { type: 'run_job', assignment_key: 'default', service_id: 'service-1' },
          }),
          201,
        );
        await makeTickDue(server, { ...pull, name: 'nightly' }, '1 hour');
        const { fired } = await fireDueSchedules(server.ctx, 100);
        assert.ok(fired.some((tick) => tick.schedule.clientId === pull.clientId));
        const schedule = expectBody<{ last_job_id: string }>(
          await server.get(`${pull.domainPath}/schedules/nightly`),
          200,
        );
        const tickSpan = await waitForValue(
          "the tick's span",
          () =>
            exporter
              .getFinishedSpans()
              .find(
                (span) =>
                  span.name === 'pie.schedule.tick' &&
                  span.attributes['pie.client_id'] === pull.clientId,
              ),
          10_000,
        );
        assert.equal(tickSpan.parentSpanContext, undefined, 'a tick starts its own trace');
        assert.equal(tickSpan.attributes['pie.schedule'], 'nightly');
        assert.deepEqual(await storedOf('job_id', schedule.last_job_id), [
          `00-${traceId(tickSpan)}-${spanId(tickSpan)}-01`,
        ]);
      });

      it("a request with a traceparent header continues the caller's trace", async () => {
        const callerTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
        const header = `00-${callerTrace}-00f067aa0ba902b7-01`;
        const response = await server.post(
          `${tenant.domainPath}/service/service-1/assignments/default/jobs`,
          {},
          { headers: { traceparent: header } },
        );
        const { job_id: jobId } = expectBody<{ job_id: string }>(response, 202);
        const stored = await storedTraceparent(server, jobId);
        assert.equal(stored?.split('-')[1], callerTrace);
        await waitFor(
          'the job to succeed',
          async () => (await jobStatus(server, tenant, jobId)) === 'success',
          10_000,
        );
        const spans = await spansOf(jobId);
        const request = one(
          spans,
          'run-job request',
          (span) =>
            span.name === RUN_JOB_ROUTE && span.parentSpanContext?.spanId === '00f067aa0ba902b7',
        );
        assert.equal(traceId(request), callerTrace);
      });
    });
  });
}

/** An OTLP/HTTP collector that keeps what it is sent. */
async function fakeCollector() {
  const received: { path: string; contentType: string | undefined; body: Buffer }[] = [];
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      received.push({
        path: request.url ?? '',
        contentType: request.headers['content-type'],
        body: Buffer.concat(chunks),
      });
      response.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  const url = `http://127.0.0.1:${await listenOnLoopback(server)}`;
  return { url, received, close: () => closeServer(server) };
}

describe('pie serve and the OTLP exporter', () => {
  it('exports spans to OTEL_EXPORTER_OTLP_ENDPOINT, and none with OTEL_TRACES_EXPORTER=none', async () => {
    const collector = await fakeCollector();
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pie-traces-'));
    try {
      const settings = {
        PIE_DATA_DIR: dataDir,
        OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
        OTEL_SERVICE_NAME: 'pie-trace-test',
        OTEL_BSP_SCHEDULE_DELAY: '50',
      };
      const traced = await startPie(pieEnv(settings));
      try {
        assert.match(traced.output(), /traces: OpenTelemetry, exported to otlp/);
        await (await fetch(`${traced.url}/healthz`)).arrayBuffer();
        await waitFor(
          'spans at the collector',
          () => collector.received.some((r) => r.body.includes('GET /healthz')),
          10_000,
        );
        const sent = collector.received.find((r) => r.body.includes('GET /healthz'))!;
        assert.equal(sent.path, '/v1/traces');
        assert.equal(sent.contentType, 'application/x-protobuf');
        assert.ok(sent.body.includes('pie-trace-test'), 'OTEL_SERVICE_NAME names the service');
      } finally {
        traced.child.kill('SIGTERM');
        await traced.exited;
      }

      collector.received.length = 0;
      const off = await startPie(pieEnv({ ...settings, OTEL_TRACES_EXPORTER: 'none' }));
      try {
        assert.doesNotMatch(off.output(), /traces:/);
        for (let i = 0; i < 3; i++) await (await fetch(`${off.url}/healthz`)).arrayBuffer();
      } finally {
        off.child.kill('SIGTERM');
        // A started SDK would flush on shutdown: after the exit, anything sent has arrived.
        assert.equal(await off.exited, 0);
      }
      assert.deepEqual(collector.received, []);
    } finally {
      await collector.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
