import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import Fastify, { type FastifyReply, type FastifyServerOptions } from 'fastify';
import crypto from 'node:crypto';
import type { TokenVerifier } from '../auth/token-verifier.js';
import type { AppContext } from '../usecases/context.js';
import { requireCallers } from './auth.js';
import { consoleRoutes } from './console.js';
import { handleError, handleNotFound } from './error-handler.js';
import { DEFAULT_MAX_JSON_DEPTH, parseJsonBody } from './json-body.js';
import { documentCommonErrors, publishNamedSchemas } from './openapi-document.js';
import { limitRequestRates, type RateLimitOptions } from './rate-limit.js';
import { traceRequests } from './request-spans.js';
import { tracingOn } from '../observability/tracing.js';
import { SSE_DEFAULTS, type SseOptions } from './sse-sink.js';
import { formatValidationErrors } from './validation-errors.js';
import { assignmentRoutes } from './routes/assignments.routes.js';
import { batchRoutes } from './routes/batches.routes.js';
import { clientRoutes } from './routes/clients.routes.js';
import { completionRoutes } from './routes/completion.routes.js';
import { domainRoutes } from './routes/domains.routes.js';
import { eventRoutes } from './routes/events.routes.js';
import { healthRoutes } from './routes/health.routes.js';
import { jobRoutes } from './routes/jobs.routes.js';
import { redriveRoutes } from './routes/redrive.routes.js';
import { modelRoutes } from './routes/models.routes.js';
import { scheduleRoutes } from './routes/schedules.routes.js';
import { serviceRoutes } from './routes/services.routes.js';
import { statsRoutes } from './routes/stats.routes.js';
import { subscriptionRoutes } from './routes/subscriptions.routes.js';
import { workerRoutes } from './routes/workers.routes.js';
import type { TypedApp } from './typed-app.js';

export interface AppOptions {
  verifier: TokenVerifier;
  bodyLimitBytes?: number;
  /** Per-client request rate on /v2 (PIE_RATE_LIMIT_RPS, _BURST); absent or rps 0: none. */
  rateLimit?: RateLimitOptions;
  /** Bodies nested deeper than this are a 400 (PIE_MAX_JSON_DEPTH). */
  maxJsonDepth?: number;
  logger?: FastifyServerOptions['logger'];
  /** Job event streams: heartbeat and the unsent bytes that cut a consumer off. */
  events?: Partial<SseOptions>;
}

export async function buildApp(ctx: AppContext, options: AppOptions): Promise<TypedApp> {
  const app = Fastify({
    logger: options.logger ?? false,
    bodyLimit: options.bodyLimitBytes ?? 1024 * 1024,
    genReqId: () => crypto.randomUUID(),
    // Identifiers may be 128 characters; longer ones must reach validation to get a clear 400.
    routerOptions: { maxParamLength: 1024 },
    schemaErrorFormatter: formatValidationErrors,
    requestIdHeader: false,
    // Errors Fastify raises before routing (a bad percent-escape, a parameter past
    // maxParamLength) would otherwise answer in Fastify's own shape, and the latter as a 414.
    frameworkErrors: (error, _request, reply: FastifyReply) => {
      void reply.status(400).send({
        success: false,
        message:
          error.code === 'FST_ERR_MAX_PARAM_LENGTH'
            ? 'a path parameter is too long (identifiers are 1 to 128 characters)'
            : 'the URL is not valid (bad percent-encoding)',
      });
    },
    // While closing, requests still arriving on kept-alive connections are served as usual
    // (the shutdown drains them) rather than answered with Fastify's own 503 body.
    return503OnClosing: false,
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setValidatorCompiler(createValidatorCompiler());
  // Decided once, at build: with tracing off no request pays for a hook.
  if (tracingOn()) traceRequests(app);
  app.addHook('onResponse', async (request, reply) => {
    ctx.metrics.httpDuration.observe(
      {
        method: request.method,
        route: request.routeOptions.url ?? 'unknown',
        status_code: String(reply.statusCode),
      },
      reply.elapsedTime / 1000,
    );
  });
  // Event streams never end by themselves: end them (and stop the event log) as closing
  // begins, or closing would wait for them.
  app.addHook('preClose', async () => {
    await ctx.eventLog.close();
  });
  app.setErrorHandler(handleError);
  app.setNotFoundHandler(handleNotFound);
  parseJsonBodiesOnly(app, options.maxJsonDepth ?? DEFAULT_MAX_JSON_DEPTH);

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'PIE',
        version: '2.0.0',
        license: { name: 'MIT', identifier: 'MIT' },
        description:
          'Multi-tenant machine-learning job service: register models and versions, assign them ' +
          'to domains and services, run jobs, and react to their completion.',
      },
      servers: [{ url: '/' }],
      tags: [
        { name: 'tenants', description: 'Clients, domains and services' },
        { name: 'registry', description: 'Models and versions' },
        { name: 'assignments', description: 'Which model version serves a domain or service' },
        { name: 'jobs', description: 'Running, completing and cancelling jobs' },
        { name: 'subscriptions', description: 'Work triggered by completed inference' },
        { name: 'schedules', description: 'Work started on a cron schedule' },
        { name: 'workers', description: 'Pull workers: claim jobs and keep their leases' },
        { name: 'operations', description: 'Health and readiness' },
      ],
      components: {
        securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
      },
      security: [{ bearerAuth: [] }],
    },
    transformObject: publishNamedSchemas,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
  healthRoutes(app, ctx);
  consoleRoutes(app);

  await app.register(
    async (v2) => {
      requireCallers(v2, options.verifier, ctx.callbacks);
      if (options.rateLimit !== undefined) limitRequestRates(v2, options.rateLimit, ctx.metrics);
      documentCommonErrors(v2);
      // A PUT or POST without a body means "no fields", as if `{}` had been sent.
      v2.addHook('preValidation', async (request) => {
        request.body ??= {};
      });
      const api = v2 as TypedApp;
      clientRoutes(api, ctx);
      domainRoutes(api, ctx);
      serviceRoutes(api, ctx);
      modelRoutes(api, ctx);
      assignmentRoutes(api, ctx);
      jobRoutes(api, ctx);
      eventRoutes(api, ctx, { ...SSE_DEFAULTS, ...options.events });
      statsRoutes(api, ctx);
      batchRoutes(api, ctx);
      redriveRoutes(api, ctx);
      completionRoutes(api, ctx);
      workerRoutes(api, ctx);
      subscriptionRoutes(api, ctx);
      scheduleRoutes(api, ctx);
    },
    { prefix: '/v2' },
  );
  return app;
}

/**
 * Bodies are validated strictly (no type coercion: `"5"` is not a number); path and query
 * strings are text on the wire, so they are coerced to the schema's types.
 */
function createValidatorCompiler() {
  const strict = addFormats.default(
    new Ajv({ coerceTypes: false, useDefaults: true, strict: false }),
  );
  const coercing = addFormats.default(
    new Ajv({ coerceTypes: 'array', useDefaults: true, strict: false }),
  );
  return ({ schema, httpPart }: { schema: object; httpPart?: string }) =>
    (httpPart === 'body' ? strict : coercing).compile(schema);
}

/**
 * JSON bodies only. `POST` routes without a body (depart, init) work whether or not curl sends a
 * content type.
 */
function parseJsonBodiesOnly(app: TypedApp, maxJsonDepth: number) {
  // JSON is the only body PIE reads; anything else is a 415 rather than a confusing 400.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    try {
      const text = typeof body === 'string' ? body : body.toString('utf8');
      done(null, parseJsonBody(text, maxJsonDepth));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
}
