import type { Queryable } from '../db/database.js';
import type { PageRequest } from '../domain/paging.js';
import type { BatchKind } from './batches.repository.js';
import { iso, json } from './rows.js';

export type SubscriptionStatus = 'active' | 'paused';
export type SubscriptionEvent = 'inference_complete' | 'batch_complete';

/** What fires an `inference_complete` subscription: a successful inference job matching it. */
export interface InferenceSource {
  model_id: string;
  model_version: string | null;
  service_id: string | null;
}

/** What fires a `batch_complete` subscription: the end of a batch matching it. */
export interface BatchSource {
  model_id: string | null;
  assignment_key: string | null;
  kind: BatchKind | null;
}

export type SubscriptionSource = InferenceSource | BatchSource;

export interface SubscriptionAction {
  assignment_key: string;
  service_id: string | null;
  job_type: string;
  /** The priority of the jobs it starts; null takes the assignment's. */
  priority: number | null;
}

export interface Subscription {
  subscription_id: string;
  client_id: string;
  domain_id: string;
  event: SubscriptionEvent;
  source: SubscriptionSource;
  action: SubscriptionAction;
  input: Record<string, unknown>;
  status: SubscriptionStatus;
  /** Completions within this many seconds of the first join one job (0: one job each). */
  debounce_s: number;
  created_by_job_id: string | null;
  created_at: string;
  updated_at: string;
}

interface SubscriptionRow {
  subscription_id: string;
  client_id: string;
  domain_id: string;
  event: SubscriptionEvent;
  source_model_id: string | null;
  source_model_version: string | null;
  source_service_id: string | null;
  source_assignment_key: string | null;
  source_kind: BatchKind | null;
  action_assignment_key: string;
  action_service_id: string | null;
  action_job_type: string;
  action_priority: number | null;
  input: Record<string, unknown>;
  status: SubscriptionStatus;
  debounce_s: number;
  created_by_job_id: string | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = `subscription_id::text as subscription_id, client_id, domain_id, event,
  source_model_id, source_model_version, source_service_id, source_assignment_key, source_kind,
  action_assignment_key, action_service_id, action_job_type, action_priority,
  input, status, debounce_s, created_by_job_id, created_at, updated_at`;

function toSubscription(row: SubscriptionRow): Subscription {
  return {
    subscription_id: row.subscription_id,
    client_id: row.client_id,
    domain_id: row.domain_id,
    event: row.event,
    source:
      row.event === 'batch_complete'
        ? {
            model_id: row.source_model_id,
            assignment_key: row.source_assignment_key,
            kind: row.source_kind,
          }
        : {
            model_id: row.source_model_id!,
            model_version: row.source_model_version,
            service_id: row.source_service_id,
          },
    action: {
      assignment_key: row.action_assignment_key,
      service_id: row.action_service_id,
      job_type: row.action_job_type,
      priority: row.action_priority,
    },
    input: row.input,
    status: row.status,
    debounce_s: row.debounce_s,
    created_by_job_id: row.created_by_job_id,
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
  };
}

export interface SubscriptionWrite {
  clientId: string;
  domainId: string;
  event: SubscriptionEvent;
  /** Every source field; those the event does not use are null. */
  source: {
    model_id: string | null;
    model_version: string | null;
    service_id: string | null;
    assignment_key: string | null;
    kind: BatchKind | null;
  };
  action: SubscriptionAction;
  input: Record<string, unknown>;
  status: SubscriptionStatus;
  debounceS: number;
  createdByJobId: string | null;
}

/**
 * created_at keeps milliseconds (migration 000002), and a cast to timestamptz(3) rounds; both
 * timestamps are truncated here so a new subscription's updated_at equals its created_at and
 * neither lies in the future.
 */
export async function insertSubscription(
  q: Queryable,
  write: SubscriptionWrite,
): Promise<Subscription> {
  const { rows } = await q.query<SubscriptionRow>(
    `insert into subscriptions (client_id, domain_id, source_model_id, source_model_version,
       source_service_id, action_assignment_key, action_service_id, action_job_type, input,
       status, created_by_job_id, created_at, updated_at, action_priority, event,
       source_assignment_key, source_kind, debounce_s)
     values ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11,
       date_trunc('milliseconds', now()), date_trunc('milliseconds', now()), $12, $13, $14, $15,
       $16)
     returning ${COLUMNS}`,
    [
      write.clientId,
      write.domainId,
      write.source.model_id,
      write.source.model_version,
      write.source.service_id,
      write.action.assignment_key,
      write.action.service_id,
      write.action.job_type,
      json(write.input),
      write.status,
      write.createdByJobId,
      write.action.priority,
      write.event,
      write.source.assignment_key,
      write.source.kind,
      write.debounceS,
    ],
  );
  return toSubscription(rows[0]!);
}

/**
 * Which of the things a new subscription names exist: the source model, the source version
 * (true when none is named), and the source and action services in the domain (true when
 * none is named).
 */
export async function probeSubscriptionReferences(
  q: Queryable,
  refs: {
    clientId: string;
    domainId: string;
    /** null when the source names no model. */
    modelId: string | null;
    modelVersion: string | null;
    sourceServiceId: string | null;
    actionServiceId: string | null;
  },
): Promise<{ model: boolean; version: boolean; sourceService: boolean; actionService: boolean }> {
  const { rows } = await q.query<{
    model: boolean;
    version: boolean;
    source_service: boolean;
    action_service: boolean;
  }>(
    `select
       ($3::text is null or exists (select 1 from models where model_id = $3)) as model,
       ($4::text is null or exists (
         select 1 from model_versions where model_id = $3 and model_version = $4)) as version,
       ($5::text is null or exists (
         select 1 from services
         where client_id = $1 and domain_id = $2 and service_id = $5)) as source_service,
       ($6::text is null or exists (
         select 1 from services
         where client_id = $1 and domain_id = $2 and service_id = $6)) as action_service`,
    [
      refs.clientId,
      refs.domainId,
      refs.modelId,
      refs.modelVersion,
      refs.sourceServiceId,
      refs.actionServiceId,
    ],
  );
  const row = rows[0]!;
  return {
    model: row.model,
    version: row.version,
    sourceService: row.source_service,
    actionService: row.action_service,
  };
}

export async function findSubscription(
  q: Queryable,
  clientId: string,
  domainId: string,
  subscriptionId: string,
  options: { forUpdate?: boolean } = {},
): Promise<Subscription | undefined> {
  const { rows } = await q.query<SubscriptionRow>(
    `select ${COLUMNS} from subscriptions
     where client_id = $1 and domain_id = $2 and subscription_id = $3::uuid
     ${options.forUpdate === true ? 'for update' : ''}`,
    [clientId, domainId, subscriptionId],
  );
  return rows[0] && toSubscription(rows[0]);
}

/**
 * Oldest first; `page.after` is (created_at, subscription_id) of the last subscription of the
 * previous page. created_at is stored to the millisecond (migration 000002), so the ISO string
 * in the cursor is exact.
 */
export async function listSubscriptions(
  q: Queryable,
  clientId: string,
  domainId: string,
  filter: { status?: SubscriptionStatus | undefined; modelId?: string | undefined },
  page: PageRequest,
): Promise<Subscription[]> {
  const { rows } = await q.query<SubscriptionRow>(
    `select ${COLUMNS} from subscriptions
     where client_id = $1 and domain_id = $2
       and ($3::text is null or status = $3)
       and ($4::text is null or source_model_id = $4)
       and ($5::timestamptz is null or (created_at, subscription_id) > ($5::timestamptz, $6::uuid))
     order by created_at, subscription_id
     limit $7`,
    [
      clientId,
      domainId,
      filter.status ?? null,
      filter.modelId ?? null,
      page.after?.[0] ?? null,
      page.after?.[1] ?? null,
      page.limit + 1,
    ],
  );
  return rows.map(toSubscription);
}

/** Sets the status; updated_at moves only when the status changes. */
export async function setSubscriptionStatus(
  q: Queryable,
  clientId: string,
  domainId: string,
  subscriptionId: string,
  status: SubscriptionStatus,
): Promise<Subscription | undefined> {
  const { rows } = await q.query<SubscriptionRow>(
    `update subscriptions
     set status = $4,
         updated_at = case when status = $4 then updated_at else now() end
     where client_id = $1 and domain_id = $2 and subscription_id = $3::uuid
     returning ${COLUMNS}`,
    [clientId, domainId, subscriptionId, status],
  );
  return rows[0] && toSubscription(rows[0]);
}

/** Deletes a subscription; false when there was none. */
export async function deleteSubscription(
  q: Queryable,
  clientId: string,
  domainId: string,
  subscriptionId: string,
): Promise<boolean> {
  const { rowCount } = await q.query(
    `delete from subscriptions
     where client_id = $1 and domain_id = $2 and subscription_id = $3::uuid`,
    [clientId, domainId, subscriptionId],
  );
  return rowCount > 0;
}

/**
 * The SQL condition "subscription `s` fires when this job's inference succeeds", with the
 * job's fields given as SQL expressions (parameters, or another table's columns), so that
 * finding a job's subscriptions and asking whether many jobs have any share one definition.
 */
export function firesOnInference(
  s: string,
  job: Record<'client_id' | 'domain_id' | 'model_id' | 'model_version' | 'service_id', string>,
): string {
  return `${s}.client_id = ${job.client_id} and ${s}.domain_id = ${job.domain_id}
    and ${s}.source_model_id = ${job.model_id}
    and ${s}.status = 'active' and ${s}.event = 'inference_complete'
    and (${s}.source_model_version is null or ${s}.source_model_version = ${job.model_version})
    and (${s}.source_service_id is null or ${s}.source_service_id = ${job.service_id})`;
}

/**
 * The SQL condition "a subscription fires when the inference of job row `alias` succeeds",
 * for statements that read or update `jobs` under that alias.
 */
export function jobFiresSubscription(alias: string): string {
  const fires = firesOnInference('s', {
    client_id: `${alias}.client_id`,
    domain_id: `${alias}.domain_id`,
    model_id: `${alias}.model_id`,
    model_version: `${alias}.model_version`,
    service_id: `${alias}.service_id`,
  });
  return `exists (select 1 from subscriptions s where ${fires})`;
}

/**
 * Active inference_complete subscriptions a completed job matches: same client and domain,
 * source model equal, source version null or equal, source service null or equal. Ordered by
 * created_at, subscription_id.
 */
export async function findMatchingSubscriptions(
  q: Queryable,
  job: {
    client_id: string;
    domain_id: string;
    model_id: string;
    model_version: string;
    service_id: string | null;
  },
): Promise<Subscription[]> {
  const matches = firesOnInference('s', {
    client_id: '$1',
    domain_id: '$2',
    model_id: '$3',
    model_version: '$4',
    service_id: '$5::text',
  });
  const { rows } = await q.query<SubscriptionRow>(
    `select ${COLUMNS} from subscriptions s where ${matches}
     order by created_at, subscription_id`,
    [job.client_id, job.domain_id, job.model_id, job.model_version, job.service_id],
  );
  return rows.map(toSubscription);
}

/**
 * Active batch_complete subscriptions a finished batch matches: same client and domain, and
 * each source field null or equal (a batch of mixed versions has no model and matches only
 * subscriptions naming none). Ordered by created_at, subscription_id.
 */
export async function findBatchSubscriptions(
  q: Queryable,
  batch: {
    client_id: string;
    domain_id: string;
    model_id: string | null;
    assignment_key: string;
    kind: BatchKind;
  },
): Promise<Subscription[]> {
  const { rows } = await q.query<SubscriptionRow>(
    `select ${COLUMNS} from subscriptions
     where client_id = $1 and domain_id = $2 and status = 'active' and event = 'batch_complete'
       and (source_model_id is null or source_model_id = $3::text)
       and (source_assignment_key is null or source_assignment_key = $4)
       and (source_kind is null or source_kind = $5)
     order by created_at, subscription_id`,
    [batch.client_id, batch.domain_id, batch.model_id, batch.assignment_key, batch.kind],
  );
  return rows.map(toSubscription);
}
