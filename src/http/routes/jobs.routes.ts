import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { badRequest } from '../../domain/errors.js';
import { pageRequest } from '../../domain/paging.js';
import type { AppContext } from '../../usecases/context.js';
import { initServices } from '../../usecases/init-services.usecase.js';
import * as usecase from '../../usecases/jobs.usecase.js';
import * as redrive from '../../usecases/redrive.usecase.js';
import { runJob } from '../../usecases/run-job.usecase.js';
import { idempotencyKeyOf, IdempotencyHeaders, sendAnswer } from '../idempotency.js';
import { errorResponses, Page, PageQuery } from '../schemas/common.schemas.js';
import { DomainParams } from '../schemas/tenants.schemas.js';
import {
  BulkResult,
  CancelSelection,
  DomainJobParams,
  Job,
  JobParams,
  JobStarted,
  ListJobsQuery,
  RetrySelection,
  RunJobBody,
  ServiceJobParams,
  ServicesInitStarted,
} from '../schemas/jobs.schemas.js';
import type { TypedApp } from '../typed-app.js';

const tags = ['jobs'];

// A body rule JSON Schema cannot say clearly; checked before validation so that it is a 400
// that comes before the permission check, as every request's checks are ordered.
async function subscribeOnlyForInference(request: FastifyRequest) {
  const body = request.body as { subscribe?: unknown; job_type?: unknown } | undefined;
  if (body?.subscribe === true && body.job_type !== undefined && body.job_type !== 'inference') {
    throw badRequest('subscribe: true is only valid for inference jobs');
  }
}

/** A bulk body's fields as a selection. */
function selectionOf(body: {
  status?: string;
  model_id?: string;
  model_version?: string;
  service_id?: string;
  job_type?: string;
  error_code?: string;
  finished_after?: string;
  finished_before?: string;
  limit?: number;
}) {
  return {
    status: body.status,
    modelId: body.model_id,
    modelVersion: body.model_version,
    serviceId: body.service_id,
    jobType: body.job_type,
    errorCode: body.error_code,
    finishedAfter: body.finished_after,
    finishedBefore: body.finished_before,
    limit: body.limit ?? 1000,
  };
}

export function jobRoutes(app: TypedApp, ctx: AppContext) {
  redriveRoutes(app, ctx);
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
    async (request, reply) => {
      const { client_id, domain_id, service_id, key } = request.params;
      const answer = await runJob(ctx, request.caller, {
        path: { clientId: client_id, domainId: domain_id, serviceId: service_id, key },
        body: request.body,
        idempotency: idempotencyKeyOf(request),
      });
      return sendAnswer(reply, answer);
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
    async (request, reply) => {
      const { client_id, domain_id, key } = request.params;
      const answer = await runJob(ctx, request.caller, {
        path: { clientId: client_id, domainId: domain_id, serviceId: null, key },
        body: request.body,
        idempotency: idempotencyKeyOf(request),
      });
      return sendAnswer(reply, answer);
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
    async (request, reply) => {
      const { client_id, domain_id } = request.params;
      const answer = await initServices(ctx, request.caller, {
        clientId: client_id,
        domainId: domain_id,
        idempotency: idempotencyKeyOf(request),
      });
      return sendAnswer(reply, answer);
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
      return usecase.listJobs(ctx, request.caller, {
        clientId: client_id,
        domainId: domain_id,
        filter: { status, serviceId: service_id, jobType: job_type, assignmentKey: assignment_key },
        page: pageRequest(request.query, 2),
      });
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
      return usecase.getJob(ctx, request.caller, {
        clientId: client_id,
        domainId: domain_id,
        jobId: job_id,
      });
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
      return usecase.cancelJob(ctx, request.caller, {
        clientId: client_id,
        domainId: domain_id,
        jobId: job_id,
      });
    },
  );
}

function redriveRoutes(app: TypedApp, ctx: AppContext) {
  app.post(
    '/clients/:client_id/domains/:domain_id/jobs/:job_id/retry',
    {
      config: { scope: 'jobs:write' },
      schema: {
        tags,
        operationId: 'retryJob',
        summary: 'Run a failed or cancelled job again, as a new job',
        description:
          'Starts a new job from a failure or cancelled one: the same assignment revision, ' +
          'input, features and trigger, a new id, retry_of naming the original (which does not ' +
          "change). The version's current handler and timeout apply. A job in another status is a 409.",
        params: JobParams,
        headers: IdempotencyHeaders,
        response: { 202: JobStarted, ...errorResponses(400, 401, 403, 404, 409, 422, 429) },
      },
    },
    async (request, reply) => {
      const { client_id, domain_id, job_id } = request.params;
      const answer = await redrive.retryJob(ctx, request.caller, {
        clientId: client_id,
        domainId: domain_id,
        jobId: job_id,
        idempotency: idempotencyKeyOf(request),
      });
      return sendAnswer(reply, answer);
    },
  );

  app.post(
    '/clients/:client_id/domains/:domain_id/jobs/retry',
    {
      config: { scope: 'jobs:write' },
      schema: {
        tags,
        operationId: 'retryJobs',
        summary: 'Retry every failed or cancelled job that matches a filter',
        description:
          'One transaction: each failure or cancelled job of the domain the filter matches ' +
          '(oldest finished first, up to limit) is started again as a new job with retry_of. ' +
          'With a models claim, only jobs of those models match.',
        params: DomainParams,
        headers: IdempotencyHeaders,
        body: RetrySelection,
        response: { 202: BulkResult, ...errorResponses(400, 401, 403, 404, 409, 422, 429) },
      },
    },
    async (request, reply) => {
      const { client_id, domain_id } = request.params;
      const answer = await redrive.retryJobs(ctx, request.caller, {
        clientId: client_id,
        domainId: domain_id,
        selection: selectionOf(request.body),
        idempotency: idempotencyKeyOf(request),
      });
      return sendAnswer(reply, answer);
    },
  );

  app.post(
    '/clients/:client_id/domains/:domain_id/jobs/cancel',
    {
      config: { scope: 'jobs:write' },
      schema: {
        tags,
        operationId: 'cancelJobs',
        summary: 'Cancel every open job that matches a filter',
        description:
          'One transaction: each queued, dispatched or running job of the domain the filter ' +
          'matches (oldest first, up to limit) is cancelled. With a models claim, only jobs ' +
          'of those models match.',
        params: DomainParams,
        headers: IdempotencyHeaders,
        body: CancelSelection,
        response: { 200: BulkResult, ...errorResponses(400, 401, 403, 404, 409, 422, 429) },
      },
    },
    async (request, reply) => {
      const { client_id, domain_id } = request.params;
      const answer = await redrive.cancelJobs(ctx, request.caller, {
        clientId: client_id,
        domainId: domain_id,
        selection: selectionOf(request.body),
        idempotency: idempotencyKeyOf(request),
      });
      return sendAnswer(reply, answer);
    },
  );
}
