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
          ...errorResponses(400, 401, 403, 404, 422),
        },
      },
    },
    async (request, reply) => {
      const { client_id, domain_id, service_id } = request.params;
      const { service, created } = await usecase.putService(
        ctx,
        client_id,
        domain_id,
        service_id,
        request.body,
      );
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
        response: { 200: Service, ...errorResponses(400, 401, 403, 404) },
      },
    },
    (request) => {
      const { client_id, domain_id, service_id } = request.params;
      return usecase.departService(ctx, client_id, domain_id, service_id);
    },
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
        response: { 200: Page(Service), ...errorResponses(400, 401, 403, 404) },
      },
    },
    (request) => {
      const { client_id, domain_id } = request.params;
      return usecase.listServices(
        ctx,
        client_id,
        domain_id,
        { status: request.query.status },
        pageRequest(request.query, 1),
      );
    },
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
        response: { 200: Service, ...errorResponses(400, 401, 403, 404) },
      },
    },
    (request) => {
      const { client_id, domain_id, service_id } = request.params;
      return usecase.getService(ctx, client_id, domain_id, service_id);
    },
  );
}
