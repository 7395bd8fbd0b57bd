import { grants, type Caller } from '../auth/caller.js';
import type { Queryable } from '../db/database.js';
import { badRequest, forbidden, notFound, unprocessable } from '../domain/errors.js';
import {
  type PageRequest,
  type PageResult,
  requireCastableCursor,
  toPage,
} from '../domain/paging.js';
import * as subscriptions from '../repositories/subscriptions.repository.js';
import type {
  Subscription,
  SubscriptionEvent,
  SubscriptionStatus,
} from '../repositories/subscriptions.repository.js';
import type { BatchKind } from '../repositories/batches.repository.js';
import type { AppContext } from './context.js';
import { requireDomain } from './tenant-lookup.js';

export interface CreateSubscriptionBody {
  event?: SubscriptionEvent;
  source: {
    model_id?: string;
    model_version?: string;
    service_id?: string;
    assignment_key?: string;
    kind?: BatchKind;
  };
  action: { assignment_key: string; service_id?: string; job_type: string; priority?: number };
  input?: Record<string, unknown>;
  status?: SubscriptionStatus;
  debounce_s?: number;
}

/** Where a subscription lives. */
export interface SubscriptionPath {
  clientId: string;
  domainId: string;
  subscriptionId: string;
}

/**
 * Creates a subscription after checking, in this order, that the source fits the event (400),
 * the token's `models` claim (403), the tenant path (404), and that the source model, version
 * and services exist (422). The action's assignment is not checked: it may be created,
 * archived or replaced later, and a firing that cannot start its job reports why.
 */
export async function createSubscription(
  ctx: AppContext,
  caller: Caller,
  input: { clientId: string; domainId: string; body: CreateSubscriptionBody },
): Promise<Subscription> {
  const { clientId, domainId, body } = input;
  const { source, action } = body;
  const event = body.event ?? 'inference_complete';
  requireSourceFitsEvent(event, source);
  if (event === 'batch_complete' && (body.debounce_s ?? 0) > 0) {
    throw badRequest('debounce_s applies to inference_complete subscriptions only');
  }
  requireModelGrant(caller, source.model_id ?? null);
  await requireDomain(ctx.db, clientId, domainId);
  const found = await subscriptions.probeSubscriptionReferences(ctx.db, {
    clientId,
    domainId,
    modelId: source.model_id ?? null,
    modelVersion: source.model_version ?? null,
    sourceServiceId: source.service_id ?? null,
    actionServiceId: action.service_id ?? null,
  });
  const problems: string[] = [];
  if (!found.model) {
    problems.push(`source model "${source.model_id ?? ''}" is not registered`);
  } else if (!found.version) {
    problems.push(
      `source model "${source.model_id ?? ''}" has no version "${source.model_version ?? ''}"`,
    );
  }
  if (!found.sourceService) {
    problems.push(`source service "${source.service_id ?? ''}" not found in domain "${domainId}"`);
  }
  if (!found.actionService) {
    problems.push(`action service "${action.service_id ?? ''}" not found in domain "${domainId}"`);
  }
  if (problems.length > 0) throw unprocessable(problems.join('; '));

  return subscriptions.insertSubscription(ctx.db, {
    clientId,
    domainId,
    event,
    source: {
      model_id: source.model_id ?? null,
      model_version: source.model_version ?? null,
      service_id: source.service_id ?? null,
      assignment_key: source.assignment_key ?? null,
      kind: source.kind ?? null,
    },
    action: {
      assignment_key: action.assignment_key,
      service_id: action.service_id ?? null,
      job_type: action.job_type,
      priority: action.priority ?? null,
    },
    input: body.input ?? {},
    status: body.status ?? 'active',
    debounceS: body.debounce_s ?? 0,
    createdByJobId: null,
  });
}

export async function getSubscription(
  ctx: AppContext,
  _caller: Caller,
  input: SubscriptionPath,
): Promise<Subscription> {
  const { clientId, domainId, subscriptionId } = input;
  const subscription = await subscriptions.findSubscription(
    ctx.db,
    clientId,
    domainId,
    subscriptionId,
  );
  if (subscription !== undefined) return subscription;
  return subscriptionNotFound(ctx.db, clientId, domainId, subscriptionId);
}

export async function listSubscriptions(
  ctx: AppContext,
  _caller: Caller,
  input: {
    clientId: string;
    domainId: string;
    filter: { status?: SubscriptionStatus | undefined; modelId?: string | undefined };
    page: PageRequest;
  },
): Promise<PageResult<Subscription>> {
  const { clientId, domainId, filter, page } = input;
  requireCastableCursor(page.after, ['time', 'uuid']);
  await requireDomain(ctx.db, clientId, domainId);
  const rows = await subscriptions.listSubscriptions(
    ctx.db.reads,
    clientId,
    domainId,
    filter,
    page,
  );
  return toPage(rows, page.limit, (row) => [row.created_at, row.subscription_id]);
}

/**
 * Pauses or resumes a subscription. Setting the status it already has changes nothing
 * (updated_at included). A token limited to some models may only change subscriptions to them.
 */
export function setSubscriptionStatus(
  ctx: AppContext,
  caller: Caller,
  input: SubscriptionPath & { status: SubscriptionStatus },
): Promise<Subscription> {
  const { clientId, domainId, subscriptionId, status } = input;
  return ctx.db.transaction(async (tx) => {
    await requireWritableSubscription(tx, caller, clientId, domainId, subscriptionId);
    const updated = await subscriptions.setSubscriptionStatus(
      tx,
      clientId,
      domainId,
      subscriptionId,
      status,
    );
    return updated ?? subscriptionNotFound(tx, clientId, domainId, subscriptionId);
  });
}

export function deleteSubscription(
  ctx: AppContext,
  caller: Caller,
  input: SubscriptionPath,
): Promise<void> {
  const { clientId, domainId, subscriptionId } = input;
  return ctx.db.transaction(async (tx) => {
    await requireWritableSubscription(tx, caller, clientId, domainId, subscriptionId);
    await subscriptions.deleteSubscription(tx, clientId, domainId, subscriptionId);
  });
}

/** A source names what its event can match on, and an inference source names its model. */
function requireSourceFitsEvent(
  event: SubscriptionEvent,
  source: CreateSubscriptionBody['source'],
) {
  if (event === 'inference_complete') {
    if (
      source.model_id === undefined ||
      source.assignment_key !== undefined ||
      source.kind !== undefined
    ) {
      throw badRequest(
        'an inference_complete source names model_id, and optionally model_version and service_id',
      );
    }
  } else if (source.model_version !== undefined || source.service_id !== undefined) {
    throw badRequest(
      'a batch_complete source names model_id, assignment_key and kind, each optional',
    );
  }
}

/** A token limited to some models may act on subscriptions to one of them, never to any model. */
function requireModelGrant(caller: Caller, modelId: string | null) {
  if (modelId === null) {
    if (caller.models !== '*') {
      throw forbidden('this token may act on some models only; name one as the source model_id');
    }
  } else if (!grants(caller.models, modelId)) {
    throw forbidden(`this token may not act on model "${modelId}"`);
  }
}

/** The subscription, locked, when it exists and the caller's models claim covers its source. */
async function requireWritableSubscription(
  tx: Queryable,
  caller: Caller,
  clientId: string,
  domainId: string,
  subscriptionId: string,
): Promise<Subscription> {
  const subscription = await subscriptions.findSubscription(
    tx,
    clientId,
    domainId,
    subscriptionId,
    { forUpdate: true },
  );
  if (subscription === undefined) {
    return subscriptionNotFound(tx, clientId, domainId, subscriptionId);
  }
  requireModelGrant(caller, subscription.source.model_id);
  return subscription;
}

async function subscriptionNotFound(
  q: Queryable,
  clientId: string,
  domainId: string,
  subscriptionId: string,
): Promise<never> {
  await requireDomain(q, clientId, domainId);
  throw notFound(`subscription "${subscriptionId}" not found in domain "${domainId}"`);
}
