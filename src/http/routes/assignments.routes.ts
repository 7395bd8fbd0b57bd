import { Type } from '@sinclair/typebox';
import * as usecase from '../../usecases/assignments.usecase.js';
import type { AppContext } from '../../usecases/context.js';
import { pageRequest } from '../../domain/paging.js';
import {
  Assignment,
  DomainAssignmentKeyParams,
  ListAssignmentsQuery,
  PostAssignmentBody,
  PutAssignmentBody,
  ServiceAssignmentKeyParams,
} from '../schemas/assignments.schemas.js';
import { errorResponses, Page, PageQuery } from '../schemas/common.schemas.js';
import { DomainParams, ServiceParams } from '../schemas/tenants.schemas.js';
import type { TypedApp } from '../typed-app.js';

const tags = ['assignments'];

// The same five routes serve both scopes; service scope is spelled `service/{service_id}`,
// singular (the service resource itself stays under the plural `services`).
const SCOPES = [
  {
    name: 'Domain',
    base: '/clients/:client_id/domains/:domain_id',
    params: DomainParams,
    keyParams: DomainAssignmentKeyParams,
    noun: 'domain',
    extra:
      'Key "default" is the domain default: its contract governs every non-departed ' +
      'service, which are patched with service_updates and re-resolved, all or nothing (422 ' +
      'with blocking_services).',
  },
  {
    name: 'Service',
    base: '/clients/:client_id/domains/:domain_id/service/:service_id',
    params: ServiceParams,
    keyParams: ServiceAssignmentKeyParams,
    noun: 'service',
    extra:
      "The service's provided_features must satisfy the version's contract (422 with " +
      'blocking_services); service_updates is a 400 here.',
  },
] as const;

const placeOf = (params: { client_id: string; domain_id: string; service_id?: string }) => ({
  clientId: params.client_id,
  domainId: params.domain_id,
  serviceId: params.service_id ?? null,
});

export function assignmentRoutes(app: TypedApp, ctx: AppContext) {
  for (const scope of SCOPES) {
    const upsertDescription =
      'Same model, version, status and config as the active revision: nothing changes (200). ' +
      'Otherwise the active revision is archived and a new one created (201 when the key had ' +
      `no active revision, else 200). ${scope.extra}`;
    const upsertResponses = {
      200: { ...Assignment, description: `${scope.name} assignment upserted` },
      201: { ...Assignment, description: `${scope.name} assignment created` },
      ...errorResponses({
        404: 'service "service-1" not found in domain "south_australia"',
        422: 'version "2.0.0" of model "example-model" not found',
      }),
    };

    app.put(
      `${scope.base}/assignments/:key`,
      {
        config: { scope: 'assignments:write' },
        schema: {
          tags,
          operationId: `put${scope.name}Assignment`,
          summary: `Create or update a ${scope.noun} model assignment by key`,
          description: upsertDescription,
          params: scope.keyParams,
          body: PutAssignmentBody,
          response: upsertResponses,
        },
      },
      async (request, reply) => {
        const { assignment, created } = await usecase.upsertAssignment(ctx, request.caller, {
          ...placeOf(request.params),
          key: request.params.key,
          body: request.body,
        });
        return reply.status(created ? 201 : 200).send(assignment);
      },
    );

    app.post(
      `${scope.base}/assignments`,
      {
        config: { scope: 'assignments:write' },
        schema: {
          tags,
          operationId: `post${scope.name}Assignment`,
          summary: `Create or update a ${scope.noun} model assignment, key in the body`,
          description: upsertDescription,
          params: scope.params,
          body: PostAssignmentBody,
          response: upsertResponses,
        },
      },
      async (request, reply) => {
        const { key, ...body } = request.body;
        const { assignment, created } = await usecase.upsertAssignment(ctx, request.caller, {
          ...placeOf(request.params),
          key,
          body,
        });
        return reply.status(created ? 201 : 200).send(assignment);
      },
    );

    app.get(
      `${scope.base}/assignments`,
      {
        config: { scope: 'read' },
        schema: {
          tags,
          operationId: `list${scope.name}Assignments`,
          summary: `List the current revision of each ${scope.noun} assignment key`,
          params: scope.params,
          querystring: Type.Composite([PageQuery, ListAssignmentsQuery]),
          response: {
            200: Page(Assignment),
            ...errorResponses({ 404: 'domain "south_australia" not found in client "client-1"' }),
          },
        },
      },
      (request) =>
        usecase.listAssignments(ctx, request.caller, {
          ...placeOf(request.params),
          filter: { status: request.query.status },
          page: pageRequest(request.query, 1),
        }),
    );

    app.get(
      `${scope.base}/assignments/:key`,
      {
        config: { scope: 'read' },
        schema: {
          tags,
          operationId: `get${scope.name}Assignment`,
          summary: `Get the current revision of a ${scope.noun} assignment key`,
          description: 'The active revision, or the newest one when the key is retired.',
          params: scope.keyParams,
          response: {
            200: Assignment,
            ...errorResponses({
              404: 'assignment "default" not found in domain "south_australia"',
            }),
          },
        },
      },
      (request) =>
        usecase.getAssignment(ctx, request.caller, {
          ...placeOf(request.params),
          key: request.params.key,
        }),
    );

    app.get(
      `${scope.base}/assignments/:key/revisions`,
      {
        config: { scope: 'read' },
        schema: {
          tags,
          operationId: `list${scope.name}AssignmentRevisions`,
          summary: `List every revision of a ${scope.noun} assignment key, newest first`,
          params: scope.keyParams,
          querystring: PageQuery,
          response: {
            200: Page(Assignment),
            ...errorResponses({
              404: 'assignment "default" not found in domain "south_australia"',
            }),
          },
        },
      },
      (request) =>
        usecase.listRevisions(ctx, request.caller, {
          ...placeOf(request.params),
          key: request.params.key,
          page: pageRequest(request.query, 1),
        }),
    );
  }
}
