import { Type } from '@sinclair/typebox';
import { pageRequest } from '../../domain/paging.js';
import * as usecase from '../../usecases/batches.usecase.js';
import type { AppContext } from '../../usecases/context.js';
import { idempotencyKeyOf, IdempotencyHeaders, sendAnswer } from '../idempotency.js';
import {
  Batch,
  BatchParams,
  BatchStarted,
  ListBatchesQuery,
  StartBatchBody,
} from '../schemas/batches.schemas.js';
import { errorResponses, Page, PageQuery } from '../schemas/common.schemas.js';
import { DomainParams } from '../schemas/tenants.schemas.js';
import type { TypedApp } from '../typed-app.js';

const tags = ['batches'];

export function batchRoutes(app: TypedApp, ctx: AppContext) {
  app.post(
    '/clients/:client_id/domains/:domain_id/jobs/batch',
    {
      config: { scope: 'jobs:write' },
      schema: {
        tags,
        operationId: 'startBatch',
        summary: 'Start many jobs at once, all or none',
        description:
          'One job per entry through the assignment key (each service its own revision first, ' +
          "else the domain's), in one transaction: if any entry cannot run, the 422 lists every " +
          'such service and no job starts. The jobs make one batch (kind `bulk`).',
        params: DomainParams,
        headers: IdempotencyHeaders,
        body: StartBatchBody,
        response: {
          202: BatchStarted,
          ...errorResponses({
            404: 'domain "south_australia" not found in client "client-1"',
            409: 'services or assignments kept changing while the batch started; retry',
            422: '1 of 2 jobs cannot start, so none did: service "service-2" has departed and receives no new jobs',
          }),
        },
      },
    },
    async (request, reply) => {
      const { client_id, domain_id } = request.params;
      const { assignment_key, job_type, priority, jobs } = request.body;
      const answer = await usecase.startBatch(ctx, request.caller, {
        clientId: client_id,
        domainId: domain_id,
        assignmentKey: assignment_key,
        jobType: job_type ?? 'inference',
        priority,
        jobs,
        idempotency: idempotencyKeyOf(request),
      });
      return sendAnswer(reply, answer);
    },
  );

  app.get(
    '/clients/:client_id/domains/:domain_id/batches',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'listBatches',
        summary: "List a domain's batches, newest first",
        params: DomainParams,
        querystring: Type.Composite([PageQuery, ListBatchesQuery]),
        response: {
          200: Page(Batch),
          ...errorResponses({ 404: 'domain "south_australia" not found in client "client-1"' }),
        },
      },
    },
    (request) => {
      const { client_id, domain_id } = request.params;
      return usecase.listBatches(ctx, request.caller, {
        clientId: client_id,
        domainId: domain_id,
        kind: request.query.kind,
        page: pageRequest(request.query, 2),
      });
    },
  );

  app.get(
    '/clients/:client_id/domains/:domain_id/batches/:batch_id',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'getBatch',
        summary: 'Get a batch and its jobs counted by status',
        params: BatchParams,
        response: {
          200: Batch,
          ...errorResponses({
            404: 'batch "5f0c2a8e-7d1b-4c3e-9a55-2b6f1d0e9c47" not found in domain "south_australia"',
          }),
        },
      },
    },
    (request) => {
      const { client_id, domain_id, batch_id } = request.params;
      return usecase.getBatch(ctx, request.caller, {
        clientId: client_id,
        domainId: domain_id,
        batchId: batch_id,
      });
    },
  );
}
