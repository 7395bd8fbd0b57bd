import type { AppContext } from '../../usecases/context.js';
import * as redrive from '../../usecases/redrive.usecase.js';
import { idempotencyKeyOf, IdempotencyHeaders, sendAnswer } from '../idempotency.js';
import { errorResponses } from '../schemas/common.schemas.js';
import { DomainParams } from '../schemas/tenants.schemas.js';
import {
  BulkResult,
  CancelSelection,
  JobParams,
  JobStarted,
  RetrySelection,
} from '../schemas/jobs.schemas.js';
import type { TypedApp } from '../typed-app.js';

const tags = ['jobs'];

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

/** Redrive: failed or cancelled jobs run again as new jobs, and bulk cancel. */
export function redriveRoutes(app: TypedApp, ctx: AppContext) {
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
        response: {
          202: JobStarted,
          ...errorResponses({
            404: 'job "123456789012" not found in domain "south_australia"',
            409: 'job "123456789012" is queued; only failure or cancelled jobs can be retried',
            422: 'domain "south_australia" is inactive; jobs run only in active domains',
          }),
        },
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
        response: {
          202: BulkResult,
          ...errorResponses({
            404: 'domain "south_australia" not found in client "client-1"',
            409: 'a request with Idempotency-Key "run-2026-11-29" is still in progress; retry later',
            422: 'Idempotency-Key "run-2026-11-29" was already used for a different request; use a new key',
          }),
        },
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
          'of those models match. Handlers that have the jobs are told to stop, as for one ' +
          'cancelled job.',
        params: DomainParams,
        headers: IdempotencyHeaders,
        body: CancelSelection,
        response: {
          200: BulkResult,
          ...errorResponses({
            404: 'domain "south_australia" not found in client "client-1"',
            409: 'a request with Idempotency-Key "run-2026-11-29" is still in progress; retry later',
            422: 'Idempotency-Key "run-2026-11-29" was already used for a different request; use a new key',
          }),
        },
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
