import { Type } from '@sinclair/typebox';
import {
  ClientId,
  DomainId,
  JsonObject,
  named,
  Nullable,
  Priority,
  ServiceId,
  StringEnum,
  Timestamp,
} from './common.schemas.js';
import { AssignmentKey, BatchCounts, BatchId, JobId, JobType } from './jobs.schemas.js';
import { TriggeredEvent } from './completion.schemas.js';

export const BatchKind = named(
  'BatchKind',
  StringEnum(['init', 'bulk', 'schedule'] as const, {
    description: 'What started the batch: services init, `jobs/batch`, or a schedule.',
  }),
);

export const BatchParams = Type.Object({
  client_id: ClientId,
  domain_id: DomainId,
  batch_id: BatchId,
});

export const MAX_BATCH_JOBS = 10_000;

export const StartBatchBody = named(
  'StartBatchRequest',
  Type.Object(
    {
      assignment_key: AssignmentKey,
      job_type: Type.Optional({ ...JobType, default: 'inference' }),
      priority: Type.Optional(Priority),
      jobs: Type.Array(
        Type.Object(
          {
            service_id: ServiceId,
            input: Type.Optional({ ...JsonObject, description: 'Payload for this job.' }),
          },
          { additionalProperties: false },
        ),
        { minItems: 1, maxItems: MAX_BATCH_JOBS, description: 'One job per entry, in order.' },
      ),
    },
    {
      additionalProperties: false,
      examples: [
        {
          assignment_key: 'default',
          job_type: 'inference',
          jobs: [{ service_id: 'service-1' }, { service_id: 'service-2', input: { horizon: 4 } }],
        },
      ],
    },
  ),
);

export const BatchStarted = named(
  'BatchStarted',
  Type.Object(
    {
      batch_id: BatchId,
      job_ids: Type.Array(JobId, { description: "The jobs' ids, in the order of the request." }),
    },
    {
      description: 'Batch started',
      examples: [
        {
          batch_id: '5f0c2a8e-7d1b-4c3e-9a55-2b6f1d0e9c47',
          job_ids: ['123456789012', '210987654321'],
        },
      ],
    },
  ),
);

export const Batch = named(
  'Batch',
  Type.Object(
    {
      batch_id: BatchId,
      client_id: ClientId,
      domain_id: DomainId,
      kind: BatchKind,
      assignment_key: AssignmentKey,
      model_id: Nullable(
        Type.String({ description: 'The model every job ran on; null when they differ.' }),
      ),
      model_version: Nullable(Type.String()),
      total: Type.Integer({ description: 'How many jobs the batch started.' }),
      counts: BatchCounts,
      created_at: Timestamp,
      finished_at: Nullable({
        ...Timestamp,
        description: 'When the last of its jobs became final; null while any is open.',
      }),
      triggered_events: Type.Array(TriggeredEvent, {
        description:
          'What its batch_complete subscriptions did when it finished: the job each started, ' +
          'or why it could not start one.',
      }),
    },
    {
      examples: [
        {
          batch_id: '5f0c2a8e-7d1b-4c3e-9a55-2b6f1d0e9c47',
          client_id: 'client-1',
          domain_id: 'south_australia',
          kind: 'init',
          assignment_key: 'default',
          model_id: 'example-model',
          model_version: '2.0.0',
          total: 2,
          counts: { queued: 0, dispatched: 0, running: 1, success: 1, failure: 0, cancelled: 0 },
          created_at: '2026-11-29T08:00:00.000Z',
          finished_at: null,
          triggered_events: [],
        },
      ],
    },
  ),
);

export const ListBatchesQuery = Type.Object({ kind: Type.Optional(BatchKind) });
