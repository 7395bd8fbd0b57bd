import { Type } from '@sinclair/typebox';
import {
  ClientId,
  DomainId,
  Identifier,
  JsonObject,
  ModelId,
  ModelVersion,
  Nullable,
  Priority,
  ServiceId,
  Timestamp,
} from './common.schemas.js';

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

export const SubscriptionEvent = Type.Literal('inference_complete', {
  description: 'The event that fires the subscription: a successful inference job.',
});

export const SubscriptionStatus = Type.Union([Type.Literal('active'), Type.Literal('paused')], {
  description: 'Paused subscriptions do not fire.',
});

export const JobType = Type.String({
  pattern: '^[a-z][a-z0-9_]{0,63}$',
  description: 'The job type the action starts; the model version must support it.',
  examples: ['training'],
});

const AssignmentKey = Identifier(
  'Capability key of the assignment the action runs through.',
  'default',
);

export const SubscriptionSourceInput = Type.Object(
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
);

export const SubscriptionActionInput = Type.Object(
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
);

export const CreateSubscriptionBody = Type.Object(
  {
    event: Type.Optional({ ...SubscriptionEvent, default: 'inference_complete' }),
    source: SubscriptionSourceInput,
    action: SubscriptionActionInput,
    input: Type.Optional({
      ...JsonObject,
      default: {},
      description: 'Stored input of every job the subscription starts.',
    }),
    status: Type.Optional({ ...SubscriptionStatus, default: 'active' }),
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
);

export const Subscription = Type.Object(
  {
    subscription_id: Type.String({ format: 'uuid' }),
    client_id: Type.String(),
    domain_id: Type.String(),
    event: SubscriptionEvent,
    source: Type.Object({
      model_id: Type.String(),
      model_version: Nullable(Type.String()),
      service_id: Nullable(Type.String()),
    }),
    action: Type.Object({
      assignment_key: Type.String(),
      service_id: Nullable(Type.String()),
      job_type: Type.String(),
      priority: Nullable(Type.Integer({ minimum: -100, maximum: 100 })),
    }),
    input: JsonObject,
    status: SubscriptionStatus,
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
        created_by_job_id: null,
        created_at: '2026-01-01T00:00:00.000Z',
        updated_at: '2026-01-01T00:00:00.000Z',
      },
    ],
  },
);

export const ListSubscriptionsQuery = Type.Object({
  status: Type.Optional(SubscriptionStatus),
  model_id: Type.Optional({ ...ModelId, description: 'Only subscriptions to this source model.' }),
});
