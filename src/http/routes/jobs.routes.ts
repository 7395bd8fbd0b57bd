import { Type } from '@sinclair/typebox';
import type { FastifyRequest } from 'fastify';
import { badRequest } from '../../domain/errors.js';
import { pageRequest } from '../../domain/paging.js';
import type { AppContext } from '../../usecases/context.js';
import { initServices } from '../../usecases/init-services.usecase.js';
import { getJobTimeline } from '../../usecases/job-events.usecase.js';
import * as usecase from '../../usecases/jobs.usecase.js';
import { runJob } from '../../usecases/run-job.usecase.js';
import { idempotencyKeyOf, IdempotencyHeaders, sendAnswer } from '../idempotency.js';
import { errorResponses, Page, PageQuery } from '../schemas/common.schemas.js';
import { DomainParams } from '../schemas/tenants.schemas.js';
import {
  DomainJobParams,
  Job,
  JobParams,
  JobStarted,
  JobTimeline,
  ListJobsQuery,
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

export function jobRoutes(app: TypedApp, ctx: AppContext) {
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
        response: {
          202: JobStarted,
          ...errorResponses({
            404: 'service "service-1" not found in domain "south_australia"',
            409: 'a request with Idempotency-Key "run-2026-11-29" is still in progress; retry later',
            422: 'service "service-1" has departed and receives no new jobs',
          }),
        },
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
        response: {
          202: JobStarted,
          ...errorResponses({
            404: 'domain "south_australia" not found in client "client-1"',
            409: 'a request with Idempotency-Key "run-2026-11-29" is still in progress; retry later',
            422: 'no active assignment for key "default" on domain "south_australia"',
          }),
        },
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
          ...errorResponses({
            404: 'domain "south_australia" not found in client "client-1"',
            409: 'a request with Idempotency-Key "run-2026-11-29" is still in progress; retry later',
            422: 'domain "south_australia" is inactive; jobs run only in active domains',
          }),
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
        response: {
          200: Page(Job),
          ...errorResponses({ 404: 'domain "south_australia" not found in client "client-1"' }),
        },
      },
    },
    (request) => {
      const { client_id, domain_id } = request.params;
      const { status, service_id, job_type, assignment_key, batch_id, parent_job_id } =
        request.query;
      return usecase.listJobs(ctx, request.caller, {
        clientId: client_id,
        domainId: domain_id,
        filter: {
          status,
          serviceId: service_id,
          jobType: job_type,
          assignmentKey: assignment_key,
          batchId: batch_id,
          parentJobId: parent_job_id,
        },
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
        response: {
          200: Job,
          ...errorResponses({ 404: 'job "123456789012" not found in domain "south_australia"' }),
        },
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

  app.get(
    '/clients/:client_id/domains/:domain_id/jobs/:job_id/events',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'getJobTimeline',
        summary: "A job's status changes, with their attempts",
        description:
          "Every change of the job's status the job event log keeps (PIE_EVENTS_RETENTION_S), " +
          'oldest first, each with the attempt it belongs to: a job dispatched twice shows both ' +
          "attempts. `complete` is false once retention deleted the job's start. A change " +
          'appears once the log has numbered it (milliseconds after it committed), as on the ' +
          "domain's event stream. At most the latest 1,000 changes. See docs/API-CONTRACT.md, " +
          '"Job events".',
        params: JobParams,
        response: {
          200: JobTimeline,
          ...errorResponses({ 404: 'job "123456789012" not found in domain "south_australia"' }),
        },
      },
    },
    (request) => {
      const { client_id, domain_id, job_id } = request.params;
      return getJobTimeline(ctx, request.caller, {
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
        description:
          "A handler that has the job is told to stop: a worker's next heartbeat is a 409, a " +
          "command's process is sent SIGTERM then SIGKILL, an http handler gets a signed " +
          '{"type": "job.cancelled", "job_id"} POST and a TrueFoundry run is terminated (both ' +
          'best effort). A completion of a cancelled job is a 409.',
        params: JobParams,
        response: {
          200: Job,
          ...errorResponses({
            404: 'job "123456789012" not found in domain "south_australia"',
            409: 'job "123456789012" already finished with status "success"',
          }),
        },
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
