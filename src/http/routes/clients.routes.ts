import * as usecase from '../../usecases/clients.usecase.js';
import type { AppContext } from '../../usecases/context.js';
import { pageRequest } from '../../domain/paging.js';
import { errorResponses, Page, PageQuery } from '../schemas/common.schemas.js';
import { Client, ClientParams, PutClientBody } from '../schemas/tenants.schemas.js';
import type { TypedApp } from '../typed-app.js';

const tags = ['tenants'];

export function clientRoutes(app: TypedApp, ctx: AppContext) {
  app.put(
    '/clients/:client_id',
    {
      config: { scope: 'tenants:write' },
      schema: {
        tags,
        operationId: 'putClient',
        summary: 'Create or update a client',
        params: ClientParams,
        body: PutClientBody,
        response: {
          200: { ...Client, description: 'Client updated' },
          201: { ...Client, description: 'Client created' },
          ...errorResponses({}),
        },
      },
    },
    async (request, reply) => {
      const { client, created } = await usecase.putClient(ctx, request.caller, {
        clientId: request.params.client_id,
        body: request.body,
      });
      return reply.status(created ? 201 : 200).send(client);
    },
  );

  app.get(
    '/clients',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'listClients',
        summary: "List the clients the caller's token may see",
        querystring: PageQuery,
        response: { 200: Page(Client), ...errorResponses({}) },
      },
    },
    (request) => usecase.listClients(ctx, request.caller, { page: pageRequest(request.query, 1) }),
  );

  app.get(
    '/clients/:client_id',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'getClient',
        summary: 'Get a client',
        params: ClientParams,
        response: { 200: Client, ...errorResponses({ 404: 'client "client-1" not found' }) },
      },
    },
    (request) => usecase.getClient(ctx, request.caller, { clientId: request.params.client_id }),
  );
}
