import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../usecases/context.js';
import type { TypedApp } from '../typed-app.js';

const Status = Type.Object({ status: Type.String() });

export function healthRoutes(app: TypedApp, ctx: AppContext) {
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['operations'],
        operationId: 'healthz',
        summary: 'Liveness: the process is serving',
        security: [],
        response: { 200: Status },
      },
    },
    () => ({ status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['operations'],
        operationId: 'readyz',
        summary: 'Readiness: the database answers and the process is not shutting down',
        security: [],
        response: { 200: Status, 503: Status },
      },
    },
    async (_request, reply) => {
      // First thing a shutdown does, so a load balancer sends new work elsewhere while this
      // process finishes what it holds.
      if (ctx.wakeups.draining) return reply.status(503).send({ status: 'shutting down' });
      try {
        await ctx.db.query('select 1');
        return { status: 'ready' };
      } catch {
        return reply.status(503).send({ status: 'database unavailable' });
      }
    },
  );

  app.get(
    '/metrics',
    {
      schema: {
        tags: ['operations'],
        operationId: 'metrics',
        summary: 'Prometheus metrics of this process',
        security: [],
        produces: ['text/plain'],
        response: { 200: { type: 'string', description: 'Prometheus text exposition format' } },
      },
    },
    async (_request, reply) =>
      reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics()),
  );
}
