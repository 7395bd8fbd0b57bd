import type { AppContext } from '../../usecases/context.js';
import * as usecase from '../../usecases/domains.usecase.js';
import { pageRequest } from '../../domain/paging.js';
import { errorResponses, Page, PageQuery } from '../schemas/common.schemas.js';
import { ClientParams, Domain, DomainParams, PutDomainBody } from '../schemas/tenants.schemas.js';
import type { TypedApp } from '../typed-app.js';

const tags = ['tenants'];

export function domainRoutes(app: TypedApp, ctx: AppContext) {
  app.put(
    '/clients/:client_id/domains/:domain_id',
    {
      config: { scope: 'tenants:write' },
      schema: {
        tags,
        operationId: 'putDomain',
        summary: 'Create or update a domain',
        description: 'A new domain is active unless the body says otherwise.',
        params: DomainParams,
        body: PutDomainBody,
        response: {
          200: { ...Domain, description: 'Domain updated' },
          201: { ...Domain, description: 'Domain created' },
          ...errorResponses({ 404: 'client "client-1" not found' }),
        },
      },
    },
    async (request, reply) => {
      const { client_id, domain_id } = request.params;
      const { domain, created } = await usecase.putDomain(ctx, request.caller, {
        clientId: client_id,
        domainId: domain_id,
        body: request.body,
      });
      return reply.status(created ? 201 : 200).send(domain);
    },
  );

  app.get(
    '/clients/:client_id/domains',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'listDomains',
        summary: "List a client's domains",
        params: ClientParams,
        querystring: PageQuery,
        response: { 200: Page(Domain), ...errorResponses({ 404: 'client "client-1" not found' }) },
      },
    },
    (request) =>
      usecase.listDomains(ctx, request.caller, {
        clientId: request.params.client_id,
        page: pageRequest(request.query, 1),
      }),
  );

  app.get(
    '/clients/:client_id/domains/:domain_id',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'getDomain',
        summary: 'Get a domain',
        params: DomainParams,
        response: {
          200: Domain,
          ...errorResponses({ 404: 'domain "south_australia" not found in client "client-1"' }),
        },
      },
    },
    (request) =>
      usecase.getDomain(ctx, request.caller, {
        clientId: request.params.client_id,
        domainId: request.params.domain_id,
      }),
  );
}
