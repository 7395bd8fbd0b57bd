import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../usecases/context.js';
import * as usecase from '../../usecases/services.usecase.js';
import { pageRequest } from '../../domain/paging.js';
import { errorResponses, Page, PageQuery } from '../schemas/common.schemas.js';
import {
  DomainParams,
  ListServicesQuery,
  PutServiceBody,
  Service,
  ServiceParams,
} from '../schemas/tenants.schemas.js';
import type { TypedApp } from '../typed-app.js';

const tags = ['tenants'];

const servicePath = (params: { client_id: string; domain_id: string; service_id: string }) => ({
  clientId: params.client_id,
  domainId: params.domain_id,
  serviceId: params.service_id,
});

export function serviceRoutes(app: TypedApp, ctx: AppContext) {
  app.put(
    '/clients/:client_id/domains/:domain_id/services/:service_id',
    {
      config: { scope: 'tenants:write' },
      schema: {
        tags,
        operationId: 'putService',
        summary: 'Create or update a service',
        description:
          'Stores provided_features and, when the domain has a default assignment, resolves them ' +
          'against its contract (422 with problems when they do not satisfy it).',
        params: ServiceParams,
        body: PutServiceBody,
        response: {
          200: { ...Service, description: 'Service updated' },
          201: { ...Service, description: 'Service created' },
          ...errorResponses({
            404: 'domain "south_australia" not found in client "client-1"',
            422: 'service "service-1" does not satisfy the domain default contract (example-model@2.0.0): route: required feature is missing',
          }),
        },
      },
    },
    async (request, reply) => {
      const { service, created } = await usecase.putService(ctx, request.caller, {
        ...servicePath(request.params),
        body: request.body,
      });
      return reply.status(created ? 201 : 200).send(service);
    },
  );

  app.post(
    '/clients/:client_id/domains/:domain_id/services/:service_id/depart',
    {
      config: { scope: 'tenants:write' },
      schema: {
        tags,
        operationId: 'departService',
        summary: 'Mark a service departed',
        description: 'Departed services keep their history and receive no new jobs.',
        params: ServiceParams,
        response: {
          200: Service,
          ...errorResponses({ 404: 'service "service-1" not found in domain "south_australia"' }),
        },
      },
    },
    (request) => usecase.departService(ctx, request.caller, servicePath(request.params)),
  );

  app.get(
    '/clients/:client_id/domains/:domain_id/services',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'listServices',
        summary: "List a domain's services",
        params: DomainParams,
        querystring: Type.Composite([PageQuery, ListServicesQuery]),
        response: {
          200: Page(Service),
          ...errorResponses({ 404: 'domain "south_australia" not found in client "client-1"' }),
        },
      },
    },
    (request) =>
      usecase.listServices(ctx, request.caller, {
        clientId: request.params.client_id,
        domainId: request.params.domain_id,
        filter: { status: request.query.status },
        page: pageRequest(request.query, 1),
      }),
  );

  app.get(
    '/clients/:client_id/domains/:domain_id/services/:service_id',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'getService',
        summary: 'Get a service',
        params: ServiceParams,
        response: {
          200: Service,
          ...errorResponses({ 404: 'service "service-1" not found in domain "south_australia"' }),
        },
      },
    },
    (request) => usecase.getService(ctx, request.caller, servicePath(request.params)),
  );
}
