import type { Context } from '@opentelemetry/api';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_URL_PATH,
} from '@opentelemetry/semantic-conventions';
import {
  runInContext,
  SpanKind,
  SpanStatusCode,
  startSpan,
  type Span,
} from '../observability/tracing.js';

/**
 * One SERVER span per request, named by its route template (`POST /v2/clients/:client_id/...`),
 * continuing the trace of an incoming `traceparent` header (a handler's completion carries the
 * one its delivery had). Registered only when tracing is on, so with tracing off no hook runs.
 *
 * Three hooks by hand rather than @fastify/otel: that instrumentation makes a span for every
 * hook and handler (a dozen per request here) and expects the http instrumentation to open the
 * request's span, which PIE would start only for this. The span opens at `onRequest`; the
 * route's handler runs inside it from `preHandler` on (the body has been read by then, whose
 * stream events would not carry the context); `onResponse` ends it with the status code.
 */
export function traceRequests(app: FastifyInstance): void {
  app.decorateRequest('traceSpan', undefined);
  app.addHook('onRequest', (request: FastifyRequest, _reply: FastifyReply, done: () => void) => {
    const route = request.routeOptions.url;
    const header = request.headers['traceparent'];
    const started = startSpan(route === undefined ? request.method : `${request.method} ${route}`, {
      kind: SpanKind.SERVER,
      parent: typeof header === 'string' ? header : undefined,
      attributes: {
        [ATTR_HTTP_REQUEST_METHOD]: request.method,
        [ATTR_URL_PATH]: request.url.split('?', 1)[0],
        ...(route === undefined ? {} : { [ATTR_HTTP_ROUTE]: route }),
      },
    });
    request.traceSpan = started;
    done();
  });
  app.addHook('preHandler', (request: FastifyRequest, _reply: FastifyReply, done: () => void) => {
    const started = request.traceSpan;
    if (started === undefined) done();
    else runInContext(started.context, done);
  });
  app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
    endRequestSpan(request, reply.statusCode);
    done();
  });
  // A caller that hangs up first gets no response: its span ends here instead, without a status.
  app.addHook('onRequestAbort', (request: FastifyRequest, done: () => void) => {
    endRequestSpan(request, undefined);
    done();
  });
}

function endRequestSpan(request: FastifyRequest, statusCode: number | undefined): void {
  const span = request.traceSpan?.span;
  if (span === undefined) return;
  request.traceSpan = undefined;
  if (statusCode === undefined) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: 'the caller closed the connection' });
  } else {
    span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, statusCode);
    // Server spans are errors on 5xx only: a 4xx is the caller's mistake, answered as designed.
    if (statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}

declare module 'fastify' {
  interface FastifyRequest {
    /** This request's span and the context it is active in; undefined with tracing off. */
    traceSpan: { span: Span; context: Context } | undefined;
  }
}
