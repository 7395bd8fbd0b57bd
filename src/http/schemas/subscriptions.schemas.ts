import { Type } from '@sinclair/typebox';
import {
  ClientId,
  DomainId,
  Identifier,
  JsonObject,
  ModelId,
  ModelVersion,
  named,
  Nullable,
  Priority,
  ServiceId,
  StringEnum,
  Timestamp,
} from './common.schemas.js';
import { BatchKind } from './batches.schemas.js';

// `format: uuid` alone would also accept the `urn:uuid:` form, which PostgreSQL's uuid type
// refuses; the pattern keeps every accepted id storable.
export const SubscriptionId = Type.String({
  format: 'uuid',
  pattern: '^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$',
  description: 'Subscription identifier (UUID).',
  examples: ['0b6a3c1e-5f2d-4c8e-9a7b-1d2e3f4a5b6c'],
});

export const SubscriptionParams = Type.Object({
  client_id: ClientId,
  domain_id: DomainId,
  subscription_id: SubscriptionId,
});

export const SubscriptionEvent = named(
  'SubscriptionEvent',
  StringEnum(['inference_complete', 'batch_complete'] as const, {
    description:
      'What fires the subscription: a successful inference job (`inference_complete`), or ' +
      'the last job of a batch becoming final (`batch_complete`).',
  }),
);

export const SubscriptionStatus = named(
  'SubscriptionStatus',
  StringEnum(['active', 'paused'] as const, {
    description: 'Paused subscriptions do not fire.',
  }),
);

export const JobType = Type.String({
  pattern: '^[a-z][a-z0-9_]{0,63}$',
  description: 'The job type the action starts; the model version must support it.',
  examples: ['training'],
});

const AssignmentKey = Identifier(
  'Capability key of the assignment the action runs through.',
  'default',
);

export const SubscriptionSourceInput = named(
  'CompletionSourceInput',
  Type.Object(
    {
      model_id: ModelId,
      model_version: Type.Optional({
        ...ModelVersion,
        description: 'Only jobs of this version match; omit to match every version.',
      }),
      service_id: Type.Optional({
        ...ServiceId,
        description: 'Only jobs of this service match; omit to match every service.',
      }),
    },
    { additionalProperties: false, description: 'What a completed inference job must match.' },
  ),
);

export const BatchSourceInput = named(
  'BatchSourceInput',
  Type.Object(
    {
      model_id: Type.Optional({
        ...ModelId,
        description: 'Only batches whose jobs all ran on this model; omit to match any.',
      }),
      assignment_key: Type.Optional({
        ...AssignmentKey,
        description: 'Only batches started through this assignment key; omit to match any.',
      }),
      kind: Type.Optional(BatchKind),
    },
    { additionalProperties: false, description: 'What a finished batch must match.' },
  ),
);

export const SubscriptionActionInput = named(
  'SubscriptionAction',
  Type.Object(
    {
      assignment_key: AssignmentKey,
      service_id: Type.Optional({
        ...ServiceId,
        description: "Run the job on this service's assignment; omit for a domain-scope job.",
      }),
      job_type: JobType,
      priority: Type.Optional({
        ...Priority,
        description:
          'The priority (-100..100) of the jobs a firing starts; omit to take the priority of ' +
          'the assignment they run through.',
      }),
    },
    { additionalProperties: false, description: 'The job a firing starts.' },
  ),
);

const DebounceS = Type.Integer({
  minimum: 0,
  maximum: 86_400,
  default: 0,
  description:
    'inference_complete only. 0: each matching completion starts its own job. Above 0: the ' +
    'first starts a job due this many seconds later, and matching completions until then ' +
    'join it (its trigger lists their job ids and outputs, and their count).',
});

export const CreateSubscriptionBody = named(
  'CreateSubscriptionRequest',
  Type.Object(
    {
      event: Type.Optional({ ...SubscriptionEvent, default: 'inference_complete' }),
      source: Type.Union([SubscriptionSourceInput, BatchSourceInput], {
        description:
          'For inference_complete: model_id, and optionally model_version and service_id. ' +
          'For batch_complete: model_id, assignment_key and kind, each optional.',
      }),
      action: SubscriptionActionInput,
      input: Type.Optional({
        ...JsonObject,
        default: {},
        description: 'Stored input of every job the subscription starts.',
      }),
      status: Type.Optional({ ...SubscriptionStatus, default: 'active' }),
      debounce_s: Type.Optional(DebounceS),
    },
    {
      additionalProperties: false,
      examples: [
        {
          source: { model_id: 'example-model', model_version: '2.0.0' },
          action: { assignment_key: 'default', job_type: 'training' },
          input: { epochs: 3 },
        },
      ],
    },
  ),
);

export const Subscription = named(
  'Subscription',
  Type.Object(
    {
      subscription_id: Type.String({ format: 'uuid' }),
      client_id: Type.String(),
      domain_id: Type.String(),
      event: SubscriptionEvent,
      source: Type.Union([
        Type.Object({
          model_id: Type.String(),
          model_version: Nullable(Type.String()),
          service_id: Nullable(Type.String()),
        }),
        Type.Object({
          model_id: Nullable(Type.String()),
          assignment_key: Nullable(Type.String()),
          kind: Nullable(BatchKind),
        }),
      ]),
      action: Type.Object({
        assignment_key: Type.String(),
        service_id: Nullable(Type.String()),
        job_type: Type.String(),
        priority: Nullable(Type.Integer({ minimum: -100, maximum: 100 })),
      }),
      input: JsonObject,
      status: SubscriptionStatus,
      debounce_s: DebounceS,
      created_by_job_id: Nullable(
        Type.String({ description: 'The job whose `subscribe: true` created it.' }),
      ),
      created_at: Timestamp,
      updated_at: Timestamp,
    },
    {
      examples: [
        {
          subscription_id: '0b6a3c1e-5f2d-4c8e-9a7b-1d2e3f4a5b6c',
          client_id: 'client-1',
          domain_id: 'south_australia',
          event: 'inference_complete',
          source: { model_id: 'example-model', model_version: '2.0.0', service_id: null },
          action: {
            assignment_key: 'default',
            service_id: null,
            job_type: 'training',
            priority: null,
          },
          input: { epochs: 3 },
          status: 'active',
          debounce_s: 0,
          created_by_job_id: null,
          created_at: '2026-01-01T00:00:00.000Z',
          updated_at: '2026-01-01T00:00:00.000Z',
        },
      ],
    },
  ),
);

export const ListSubscriptionsQuery = Type.Object({
  status: Type.Optional(SubscriptionStatus),
  model_id: Type.Optional({ ...ModelId, description: 'Only subscriptions to this source model.' }),
});
