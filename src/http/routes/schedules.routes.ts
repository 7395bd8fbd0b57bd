import { Type } from '@sinclair/typebox';
import { pageRequest } from '../../domain/paging.js';
import type { AppContext } from '../../usecases/context.js';
import * as usecase from '../../usecases/schedules.usecase.js';
import { errorResponses, Page, PageQuery } from '../schemas/common.schemas.js';
import {
  ListSchedulesQuery,
  PutScheduleBody,
  Schedule,
  ScheduleParams,
} from '../schemas/schedules.schemas.js';
import { DomainParams } from '../schemas/tenants.schemas.js';
import type { TypedApp } from '../typed-app.js';

const tags = ['schedules'];

const scheduleKey = (params: {
  client_id: string;
  domain_id: string;
  name: string;
}): usecase.ScheduleKey => ({
  clientId: params.client_id,
  domainId: params.domain_id,
  name: params.name,
});

export function scheduleRoutes(app: TypedApp, ctx: AppContext) {
  app.put(
    '/clients/:client_id/domains/:domain_id/schedules/:name',
    {
      config: { scope: 'jobs:write' },
      schema: {
        tags,
        operationId: 'putSchedule',
        summary: 'Create or update a schedule',
        description:
          'At each tick of `cron`, read in `timezone`, PIE runs the action once, in whichever ' +
          'of its processes claims the tick. Ticks missed while no process ran fire once, not ' +
          'once each. An action that fails is recorded in `last_error` and tried again at the ' +
          'next tick. Writing a schedule needs a token whose `models` claim is "*", since its ' +
          'jobs run on whatever model the assignment names. 400 for a cron or time zone that ' +
          'is not valid; 422 when the action names a service the domain does not have.',
        params: ScheduleParams,
        body: PutScheduleBody,
        response: {
          200: { ...Schedule, description: 'Schedule updated' },
          201: { ...Schedule, description: 'Schedule created' },
          ...errorResponses({
            404: 'domain "south_australia" not found in client "client-1"',
            422: 'action service "service-9" not found in domain "south_australia"',
          }),
        },
      },
    },
    async (request, reply) => {
      const { created, schedule } = await usecase.putSchedule(ctx, request.caller, {
        key: scheduleKey(request.params),
        body: request.body,
      });
      return reply.status(created ? 201 : 200).send(schedule);
    },
  );

  app.get(
    '/clients/:client_id/domains/:domain_id/schedules',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'listSchedules',
        summary: "List a domain's schedules",
        description: 'In name order, optionally filtered by status.',
        params: DomainParams,
        querystring: Type.Composite([PageQuery, ListSchedulesQuery]),
        response: {
          200: Page(Schedule),
          ...errorResponses({ 404: 'domain "south_australia" not found in client "client-1"' }),
        },
      },
    },
    (request) =>
      usecase.listSchedules(ctx, request.caller, {
        clientId: request.params.client_id,
        domainId: request.params.domain_id,
        filter: { status: request.query.status },
        page: pageRequest(request.query, 1),
      }),
  );

  app.get(
    '/clients/:client_id/domains/:domain_id/schedules/:name',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'getSchedule',
        summary: 'Get a schedule',
        params: ScheduleParams,
        response: {
          200: Schedule,
          ...errorResponses({
            404: 'schedule "nightly-init" not found in domain "south_australia"',
          }),
        },
      },
    },
    (request) => usecase.getSchedule(ctx, request.caller, scheduleKey(request.params)),
  );

  app.delete(
    '/clients/:client_id/domains/:domain_id/schedules/:name',
    {
      config: { scope: 'jobs:write' },
      schema: {
        tags,
        operationId: 'deleteSchedule',
        summary: 'Delete a schedule',
        description: 'Removes it for good; jobs its ticks started are kept.',
        params: ScheduleParams,
        response: {
          204: Type.Null({ description: 'Schedule deleted' }),
          ...errorResponses({
            404: 'schedule "nightly-init" not found in domain "south_australia"',
          }),
        },
      },
    },
    async (request, reply) => {
      await usecase.deleteSchedule(ctx, request.caller, scheduleKey(request.params));
      return reply.status(204).send(null);
    },
  );
}
