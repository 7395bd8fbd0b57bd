import { Type } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AppContext } from '../../usecases/context.js';
import { initServices } from '../../usecases/init-services.usecase.js';
import * as usecase from '../../usecases/jobs.usecase.js';
import {
  runJob,
  type JobPath,
  type RunJobBody as RunJobRequest,
} from '../../usecases/run-job.usecase.js';
import { badRequest, tooManyRequests } from '../../domain/errors.js';
import { answerIdempotently, IdempotencyHeaders } from '../idempotency.js';
import { pageRequest } from '../../domain/paging.js';
import { errorResponses, Page, PageQuery } from '../schemas/common.schemas.js';
import { DomainParams } from '../schemas/tenants.schemas.js';
import {
  DomainJobParams,
  Job,
  JobParams,
  JobStarted,
  ListJobsQuery,
  RunJobBody,
  ServiceJobParams,
  ServicesInitStarted,
} from '../schemas/jobs.schemas.js';
import type { TypedApp } from '../typed-app.js';

const tags = ['jobs'];

// A body rule JSON Schema cannot say clearly; checked before validation so it stays a 400
// that comes before the permission check, as SPEC orders them.
async function subscribeOnlyForInference(request: FastifyRequest) {
  const body = request.body as { subscribe?: unknown; job_type?: unknown } | undefined;
  if (body?.subscribe === true && body.job_type !== undefined && body.job_type !== 'inference') {
    throw badRequest('subscribe: true is only valid for inference jobs');
  }
}

// The open-jobs quota's counts are refreshed every second, so that is when to ask again.
const QUOTA_RETRY_AFTER_S = 1;

/**
 * Runs `work`, which starts jobs for `clientId` and resolves to how many it started (once they
 * are committed), under the open-jobs quota: at the quota it is a 429 with Retry-After. Checked
 * after the permission check and before anything is read, so a client at its quota costs the
 * database nothing; an idempotent replay is refused too while the client is at its quota.
 */
async function withinOpenJobQuota<Sent>(
  ctx: AppContext,
  reply: FastifyReply,
  clientId: string,
  work: () => Promise<{ sent: Sent; started: number }>,
): Promise<Sent> {
  const admission = await ctx.openJobs.admit(clientId);
  if (admission === undefined) {
    ctx.metrics.rateLimited.inc({ reason: 'open_jobs' });
    reply.header('retry-after', String(QUOTA_RETRY_AFTER_S));
    throw tooManyRequests(
      `client "${clientId}" has reached its quota of ${ctx.openJobs.limit} open jobs ` +
        '(queued, dispatched or running); retry once some have finished',
    );
  }
  let started = 0;
  try {
    const done = await work();
    started = done.started;
    return done.sent;
  } finally {
    admission.settle(started);
  }
}

export function jobRoutes(app: TypedApp, ctx: AppContext) {
  // Both run-job routes (service and domain scope) answer the same way.
  const answerRunJob = (
    request: FastifyRequest,
    reply: FastifyReply,
    path: JobPath,
    body: RunJobRequest,
  ) =>
    withinOpenJobQuota(ctx, reply, path.clientId, async () => {
      let wake: string | undefined;
      const sent = await answerIdempotently(ctx, request, reply, path.clientId, async (q) => {
        const answer = await runJob(
          q,
          { targets: ctx.jobTargets, batcher: ctx.jobInserts },
          request.caller,
          path,
          body,
        );
        ctx.metrics.jobsCreated.inc({ job_type: body.job_type ?? 'inference' });
        wake = answer.wake;
        return answer;
      });
      // Committed by now (a replay started nothing and announces nothing).
      if (wake !== undefined) ctx.wakeups.announce([wake]);
      return { sent, started: wake === undefined ? 0 : 1 };
    });

  app.post(
    '/clients/:client_id/domains/:domain_id/service/:service_id/assignments/:key/jobs',
    {
      config: { scope: 'jobs:write' },
      preValidation: subscribeOnlyForInference,
      schema: {
        tags,
        operationId: 'runServiceJob',
        summary: 'Run a job on a service model assignment',
        description:
          "Uses the service's active revision for the key, else the domain's. Checks the " +
          'domain is active, the service has not departed, the version supports the job type ' +
          "and the service's features satisfy its contract, then queues the job.",
        params: ServiceJobParams,
        headers: IdempotencyHeaders,
        body: RunJobBody,
        response: { 202: JobStarted, ...errorResponses(400, 401, 403, 404, 409, 422, 429) },
      },
    },
    (request, reply) => {
      const { client_id, domain_id, service_id, key } = request.params;
      const path = { clientId: client_id, domainId: domain_id, serviceId: service_id, key };
      return answerRunJob(request, reply, path, request.body);
    },
  );

  app.post(
    '/clients/:client_id/domains/:domain_id/assignments/:key/jobs',
    {
      config: { scope: 'jobs:write' },
      preValidation: subscribeOnlyForInference,
      schema: {
        tags,
        operationId: 'runDomainJob',
        summary: 'Run a job on a domain model assignment',
        description:
          "A domain-scope job: no service and no features, through the domain's active revision for the key.",
        params: DomainJobParams,
        headers: IdempotencyHeaders,
        body: RunJobBody,
        response: { 202: JobStarted, ...errorResponses(400, 401, 403, 404, 409, 422, 429) },
      },
    },
    (request, reply) => {
      const { client_id, domain_id, key } = request.params;
      const path = { clientId: client_id, domainId: domain_id, serviceId: null, key };
      return answerRunJob(request, reply, path, request.body);
    },
  );

  app.post(
    '/clients/:client_id/domains/:domain_id/services/init',
    {
      config: { scope: 'jobs:write' },
      schema: {
        tags,
        operationId: 'initServices',
        summary: 'Re-initialize all non-departed services',
        description:
          'Re-initialize all non-departed services in the domain and re-trigger domain inference: ' +
          'each receives a fresh inference job through the active default assignment, using its ' +
          'stored resolved_features. Stored features are not changed.',
        params: DomainParams,
        headers: IdempotencyHeaders,
        response: {
          202: ServicesInitStarted,
          ...errorResponses(400, 401, 403, 404, 409, 422, 429),
        },
      },
    },
    (request, reply) => {
      const { client_id, domain_id } = request.params;
      return withinOpenJobQuota(ctx, reply, client_id, async () => {
        let wake: string | undefined;
        let started = 0;
        const sent = await answerIdempotently(ctx, request, reply, client_id, async (q) => {
          const answer = await initServices(q, request.caller, client_id, domain_id);
          started = answer.body.dispatched_services.length;
          ctx.metrics.jobsCreated.inc({ job_type: 'inference' }, started);
          if (started > 0) wake = answer.wake;
          return answer;
        });
        if (wake !== undefined) ctx.wakeups.announce([wake]);
        return { sent, started };
      });
    },
  );

  app.get(
    '/clients/:client_id/domains/:domain_id/jobs',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'listJobs',
        summary: "List a domain's jobs, newest first",
        params: DomainParams,
        querystring: Type.Composite([PageQuery, ListJobsQuery]),
        response: { 200: Page(Job), ...errorResponses(400, 401, 403, 404) },
      },
    },
    (request) => {
      const { client_id, domain_id } = request.params;
      const { status, service_id, job_type, assignment_key } = request.query;
      return usecase.listJobs(
        ctx,
        client_id,
        domain_id,
        { status, serviceId: service_id, jobType: job_type, assignmentKey: assignment_key },
        pageRequest(request.query, 2),
      );
    },
  );

  app.get(
    '/clients/:client_id/domains/:domain_id/jobs/:job_id',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'getJob',
        summary: 'Get a job',
        params: JobParams,
        response: { 200: Job, ...errorResponses(400, 401, 403, 404) },
      },
    },
    (request) => {
      const { client_id, domain_id, job_id } = request.params;
      return usecase.getJob(ctx, client_id, domain_id, job_id);
    },
  );

  app.post(
    '/clients/:client_id/domains/:domain_id/jobs/:job_id/cancel',
    {
      config: { scope: 'jobs:write' },
      schema: {
        tags,
        operationId: 'cancelJob',
        summary: 'Cancel a job that is not final',
        params: JobParams,
        response: { 200: Job, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    (request) => {
      const { client_id, domain_id, job_id } = request.params;
      return usecase.cancelJob(ctx, client_id, domain_id, job_id);
    },
  );
}
