import { Type } from '@sinclair/typebox';
import type { AppContext } from '../../usecases/context.js';
import * as usecase from '../../usecases/subscriptions.usecase.js';
import { pageRequest } from '../../domain/paging.js';
import { errorResponses, Page, PageQuery } from '../schemas/common.schemas.js';
import {
  CreateSubscriptionBody,
  ListSubscriptionsQuery,
  Subscription,
  SubscriptionParams,
} from '../schemas/subscriptions.schemas.js';
import { DomainParams } from '../schemas/tenants.schemas.js';
import type { TypedApp } from '../typed-app.js';

const tags = ['subscriptions'];

const subscriptionPath = (params: {
  client_id: string;
  domain_id: string;
  subscription_id: string;
}): usecase.SubscriptionPath => ({
  clientId: params.client_id,
  domainId: params.domain_id,
  subscriptionId: params.subscription_id,
});

export function subscriptionRoutes(app: TypedApp, ctx: AppContext) {
  app.post(
    '/clients/:client_id/domains/:domain_id/subscriptions',
    {
      config: { scope: 'jobs:write' },
      schema: {
        tags,
        operationId: 'createSubscription',
        summary: 'Subscribe to completed inference',
        description:
          'Each successful inference job that matches `source` starts one job through the ' +
          "action's assignment, with the stored `input` and a `trigger` naming the job that " +
          'fired it. 422 when the source model, version or a named service does not exist.',
        params: DomainParams,
        body: CreateSubscriptionBody,
        response: {
          201: { ...Subscription, description: 'Subscription created' },
          ...errorResponses({
            404: 'domain "south_australia" not found in client "client-1"',
            422: 'source model "example-model" is not registered',
          }),
        },
      },
    },
    async (request, reply) => {
      const subscription = await usecase.createSubscription(ctx, request.caller, {
        clientId: request.params.client_id,
        domainId: request.params.domain_id,
        body: request.body,
      });
      return reply.status(201).send(subscription);
    },
  );

  app.get(
    '/clients/:client_id/domains/:domain_id/subscriptions',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'listSubscriptions',
        summary: "List a domain's subscriptions",
        description: 'Oldest first, optionally filtered by status and source model.',
        params: DomainParams,
        querystring: Type.Composite([PageQuery, ListSubscriptionsQuery]),
        response: {
          200: Page(Subscription),
          ...errorResponses({ 404: 'domain "south_australia" not found in client "client-1"' }),
        },
      },
    },
    (request) =>
      usecase.listSubscriptions(ctx, request.caller, {
        clientId: request.params.client_id,
        domainId: request.params.domain_id,
        filter: { status: request.query.status, modelId: request.query.model_id },
        page: pageRequest(request.query, 2),
      }),
  );

  app.get(
    '/clients/:client_id/domains/:domain_id/subscriptions/:subscription_id',
    {
      config: { scope: 'read' },
      schema: {
        tags,
        operationId: 'getSubscription',
        summary: 'Get a subscription',
        params: SubscriptionParams,
        response: {
          200: Subscription,
          ...errorResponses({
            404: 'subscription "2489e9ad-2ee2-4e00-8ec9-32d5f69181c0" not found in domain "south_australia"',
          }),
        },
      },
    },
    (request) => usecase.getSubscription(ctx, request.caller, subscriptionPath(request.params)),
  );

  app.delete(
    '/clients/:client_id/domains/:domain_id/subscriptions/:subscription_id',
    {
      config: { scope: 'jobs:write' },
      schema: {
        tags,
        operationId: 'deleteSubscription',
        summary: 'Delete a subscription',
        description: 'Removes it for good; jobs it started are kept.',
        params: SubscriptionParams,
        response: {
          204: Type.Null({ description: 'Subscription deleted' }),
          ...errorResponses({
            404: 'subscription "2489e9ad-2ee2-4e00-8ec9-32d5f69181c0" not found in domain "south_australia"',
          }),
        },
      },
    },
    async (request, reply) => {
      await usecase.deleteSubscription(ctx, request.caller, subscriptionPath(request.params));
      return reply.status(204).send(null);
    },
  );

  const statusChanges = [
    {
      action: 'pause',
      status: 'paused',
      summary: 'Pause a subscription',
      description: 'A paused subscription does not fire. Pausing a paused one changes nothing.',
    },
    {
      action: 'resume',
      status: 'active',
      summary: 'Resume a subscription',
      description: 'The subscription fires again. Resuming an active one changes nothing.',
    },
  ] as const;
  for (const change of statusChanges) {
    app.post(
      `/clients/:client_id/domains/:domain_id/subscriptions/:subscription_id/${change.action}`,
      {
        config: { scope: 'jobs:write' },
        schema: {
          tags,
          operationId: `${change.action}Subscription`,
          summary: change.summary,
          description: change.description,
          params: SubscriptionParams,
          response: {
            200: Subscription,
            ...errorResponses({
              404: 'subscription "2489e9ad-2ee2-4e00-8ec9-32d5f69181c0" not found in domain "south_australia"',
            }),
          },
        },
      },
      (request) =>
        usecase.setSubscriptionStatus(ctx, request.caller, {
          ...subscriptionPath(request.params),
          status: change.status,
        }),
    );
  }
}
