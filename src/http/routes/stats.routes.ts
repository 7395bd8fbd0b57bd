import type { AppContext } from '../../usecases/context.js';
import * as usecase from '../../usecases/job-stats.usecase.js';
import { errorResponses } from '../schemas/common.schemas.js';
import { JobStats } from '../schemas/stats.schemas.js';
import { ClientParams, DomainParams } from '../schemas/tenants.schemas.js';
import type { TypedApp } from '../typed-app.js';

const tags = ['jobs'];

const DESCRIPTION =
  'From counters the event log keeps as jobs change (never a count of the jobs), so the ' +
  'answer costs the same for a domain of ten jobs or of a million. They lag the changes by the ' +
  "log's turn (about 10 ms, at most PIE_EVENTS_POLL_MS); jobs retention deletes leave the " +
  'counts. See docs/API-CONTRACT.md, "Job statistics".';

export function statsRoutes(app: TypedApp, ctx: AppContext) {
  app.get(
    '/clients/:client_id/domains/:domain_id/stats',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'getDomainStats',
        summary: "A domain's jobs by status and its throughput over the last hour",
        description: DESCRIPTION,
        params: DomainParams,
        response: {
          200: JobStats,
          ...errorResponses({ 404: 'domain "south_australia" not found in client "client-1"' }),
        },
      },
    },
    (request) =>
      usecase.getDomainStats(ctx, request.caller, {
        clientId: request.params.client_id,
        domainId: request.params.domain_id,
      }),
  );

  app.get(
    '/clients/:client_id/stats',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'getClientStats',
        summary:
          "A client's jobs by status and its throughput over the last hour, over all its domains",
        description: DESCRIPTION,
        params: ClientParams,
        response: {
          200: JobStats,
          ...errorResponses({ 404: 'client "client-1" not found' }),
        },
      },
    },
    (request) =>
      usecase.getClientStats(ctx, request.caller, { clientId: request.params.client_id }),
  );
}
