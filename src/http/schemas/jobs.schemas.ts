import { Type } from '@sinclair/typebox';
import { JOB_STATUSES } from '../../domain/job-status.js';
import { JOB_TIMELINE_LIMIT } from '../../usecases/job-events.usecase.js';
import {
  ClientId,
  DomainId,
  Identifier,
  JsonObject,
  ModelId,
  named,
  ModelVersion,
  Nullable,
  Priority,
  ServiceId,
  StringEnum,
  Timestamp,
} from './common.schemas.js';

export const AssignmentKey = Identifier(
  'Stable capability key within the domain or service scope.',
  'default',
);
export const JobId = Type.String({
  pattern: '^[0-9]{12}$',
  description: 'Durable model job identifier: 12 decimal digits.',
  examples: ['123456789012'],
});
export const JobType = Type.String({
  pattern: '^[a-z][a-z0-9_]{0,63}$',
  description: 'What the job asks of the model, e.g. inference or training.',
  examples: ['inference'],
});

export const ServiceJobParams = Type.Object({
  client_id: ClientId,
  domain_id: DomainId,
  service_id: ServiceId,
  key: AssignmentKey,
});
export const DomainJobParams = Type.Object({
  client_id: ClientId,
  domain_id: DomainId,
  key: AssignmentKey,
});
export const JobParams = Type.Object({ client_id: ClientId, domain_id: DomainId, job_id: JobId });
export const RunJobBody = named(
  'RunJobRequest',
  Type.Object(
    {
      job_type: Type.Optional({ ...JobType, default: 'inference' }),
      input: Type.Optional({
        ...JsonObject,
        description: 'Payload forwarded to the assigned model handler.',
      }),
      subscribe: Type.Optional(
        Type.Boolean({
          description:
            'When true for inference, stores this input as a model event subscription for future retraining.',
        }),
      ),
      priority: Type.Optional(Priority),
    },
    {
      additionalProperties: false,
      examples: [{ job_type: 'inference', input: {}, subscribe: false }],
    },
  ),
);

export const JobStarted = named(
  'JobStarted',
  Type.Object(
    {
      job_id: JobId,
      subscription_id: Type.Optional(
        Type.String({
          format: 'uuid',
          description: 'The retraining subscription, with subscribe: true.',
        }),
      ),
    },
    { description: 'Assignment job started', examples: [{ job_id: '123456789012' }] },
  ),
);

export const ServicesInitStarted = named(
  'ServicesInitStarted',
  Type.Object(
    {
      dispatched_services: Type.Array(Type.String(), {
        description:
          'Service IDs for which a fresh assignment-linked inference job was dispatched.',
      }),
      batch_id: Nullable(
        Type.String({
          format: 'uuid',
          description: 'The batch of the jobs started; null when no service was left to run.',
        }),
      ),
    },
    {
      description: 'Batch re-initialization started',
      examples: [
        {
          dispatched_services: ['service-1'],
          batch_id: '5f0c2a8e-7d1b-4c3e-9a55-2b6f1d0e9c47',
        },
      ],
    },
  ),
);

export const JobStatus = named(
  'JobStatus',
  StringEnum(JOB_STATUSES, {
    description:
      'queued → dispatched → running → success, failure or cancelled (the last three are final).',
  }),
);

/**
 * A failed job's error. PIE's own (timeout, delivery refused, cancelled...) always carry `code`
 * and `message`; a handler's failure is stored as the handler sent it.
 */
export const JobError = named(
  'JobError',
  Type.Object(
    {
      code: Type.Optional(Type.String({ examples: ['timeout'] })),
      message: Type.Optional(Type.String()),
    },
    { additionalProperties: true, description: "A failed job's error." },
  ),
);

/** A job's output: the JSON object its handler returned. */
export const JobOutput = {
  ...JsonObject,
  description:
    'What the handler returned (e.g. S3 paths); passed to subscriptions as trigger_output.',
};

export const BatchId = Type.String({ format: 'uuid', description: 'Batch identifier.' });

const Count = Type.Integer({ minimum: 0 });
/** One count per job status: a batch's jobs, a domain's jobs now, a minute's changes. */
export const STATUS_COUNT_FIELDS = {
  queued: Count,
  dispatched: Count,
  running: Count,
  success: Count,
  failure: Count,
  cancelled: Count,
};
export const BatchCounts = named(
  'BatchCounts',
  Type.Object(STATUS_COUNT_FIELDS, { description: "The batch's jobs by status." }),
);

/** What started a job a subscription fired: one of three shapes, by the subscription's kind. */
const JobTrigger = named(
  'JobTrigger',
  Type.Union(
    [
      named(
        'CompletionTrigger',
        Type.Object(
          { subscription_id: Type.String(), job_id: Type.String(), output: Type.Unknown() },
          { description: 'An inference_complete subscription, fired by one completed job.' },
        ),
      ),
      named(
        'DebounceTrigger',
        Type.Object(
          {
            subscription_id: Type.String(),
            job_ids: Type.Array(Type.String()),
            outputs: Type.Array(Type.Unknown()),
            count: Type.Integer(),
          },
          { description: 'A subscription with debounce_s: the completions that joined its job.' },
        ),
      ),
      named(
        'BatchTrigger',
        Type.Object(
          {
            subscription_id: Type.String(),
            batch_id: BatchId,
            counts: BatchCounts,
            failed_services: Type.Array(Type.String()),
          },
          {
            description: 'A batch_complete subscription, fired when the last job of a batch ended.',
          },
        ),
      ),
    ],
    { description: 'What started the job: null when it was run directly.' },
  ),
);

export const Job = named(
  'Job',
  Type.Object(
    {
      job_id: JobId,
      client_id: Type.String(),
      domain_id: Type.String(),
      service_id: Nullable(Type.String()),
      assignment_id: Type.String({ format: 'uuid' }),
      assignment_key: Type.String(),
      model_id: Type.String(),
      model_version: Type.String(),
      job_type: Type.String(),
      status: JobStatus,
      input: JsonObject,
      features: Nullable(JsonObject),
      config: JsonObject,
      trigger: Nullable(JobTrigger),
      lineage: Type.Array(Type.String(), {
        description: 'Subscriptions that led to this job, oldest first.',
      }),
      priority: Type.Integer({ minimum: -100, maximum: 100 }),
      retry_of: Nullable(
        Type.String({
          description: 'The failed or cancelled job this one was started again from.',
        }),
      ),
      batch_id: Nullable(
        Type.String({ format: 'uuid', description: 'The batch the job was started in.' }),
      ),
      attempt: Type.Integer(),
      max_attempts: Type.Integer(),
      output: Nullable(JobOutput),
      error: Nullable(JobError),
      deadline: Timestamp,
      created_at: Timestamp,
      updated_at: Timestamp,
      dispatched_at: Nullable(Timestamp),
      finished_at: Nullable(Timestamp),
    },
    { description: 'A job: one run of a model version for a service or a domain.' },
  ),
);

/** One change of a job's status, from the job event log (`GET .../jobs/{job_id}/events`). */
export const JobStatusChange = named(
  'JobStatusChange',
  Type.Object(
    {
      position: Type.Integer({
        minimum: 1,
        description:
          "The change's place in the job event log: the `id` the domain's event stream sent it with.",
      }),
      status: JobStatus,
      previous_status: Type.Union([JobStatus, Type.Null()], {
        description: 'The status before the change; null for the job created.',
      }),
      attempt: Type.Integer({
        minimum: 0,
        description:
          "The job's attempt once changed: a claim (to dispatched) starts the next one, so it " +
          'is 0 until the first claim, and a retry back to queued keeps the attempt it ended.',
      }),
      at: { ...Timestamp, description: "When the change was made (the job's updated_at then)." },
    },
    { description: "One change of a job's status." },
  ),
);

export const JobTimeline = named(
  'JobTimeline',
  Type.Object(
    {
      items: Type.Array(JobStatusChange, {
        maxItems: JOB_TIMELINE_LIMIT,
        description:
          "The job's changes the event log keeps (PIE_EVENTS_RETENTION_S, 1 h by default), " +
          `oldest first; at most its latest ${JOB_TIMELINE_LIMIT.toLocaleString('en')}.`,
      }),
      complete: Type.Boolean({
        description:
          "Whether items start at the job's creation, so that they are its whole history; " +
          'false once retention deleted its older changes (or the job predates the log).',
      }),
    },
    {
      description: "A job's status changes with their attempts.",
      examples: [
        {
          items: [
            {
              position: 41,
              status: 'queued',
              previous_status: null,
              attempt: 0,
              at: '2026-11-29T10:00:00.000Z',
            },
            {
              position: 42,
              status: 'dispatched',
              previous_status: 'queued',
              attempt: 1,
              at: '2026-11-29T10:00:00.120Z',
            },
            {
              position: 57,
              status: 'success',
              previous_status: 'dispatched',
              attempt: 1,
              at: '2026-11-29T10:00:01.234Z',
            },
          ],
          complete: true,
        },
      ],
    },
  ),
);

export const ListJobsQuery = Type.Object({
  status: Type.Optional(JobStatus),
  service_id: Type.Optional(ServiceId),
  job_type: Type.Optional(JobType),
  assignment_key: Type.Optional(AssignmentKey),
  batch_id: Type.Optional(BatchId),
  parent_job_id: Type.Optional({
    ...JobId,
    description:
      'Jobs this one led to: retried from it (`retry_of`), or started by a subscription its ' +
      'completion fired (`trigger.job_id`, or the first of a debounced `trigger.job_ids`).',
  }),
});

/** The fields a bulk retry or cancel selects jobs by; `statuses` are those it may act on. */
function jobSelection(statuses: readonly string[], what: string) {
  return Type.Object(
    {
      status: Type.Optional(
        StringEnum(statuses, {
          description: `Only jobs in this status (of ${statuses.join(', ')}).`,
        }),
      ),
      model_id: Type.Optional(ModelId),
      model_version: Type.Optional(ModelVersion),
      service_id: Type.Optional(ServiceId),
      job_type: Type.Optional(JobType),
      error_code: Type.Optional(
        Type.String({ minLength: 1, maxLength: 200, description: "The code of the job's error." }),
      ),
      finished_after: Type.Optional({ ...Timestamp, description: 'Finished after this time.' }),
      finished_before: Type.Optional({ ...Timestamp, description: 'Finished before this time.' }),
      limit: Type.Optional(
        Type.Integer({
          minimum: 1,
          maximum: 10_000,
          default: 1000,
          description: `At most this many jobs are ${what}, oldest first.`,
        }),
      ),
    },
    { additionalProperties: false },
  );
}

export const RetrySelection = named(
  'RetrySelection',
  jobSelection(['failure', 'cancelled'], 'retried'),
);
export const CancelSelection = named(
  'CancelSelection',
  jobSelection(['queued', 'dispatched', 'running'], 'cancelled'),
);

export const BulkResult = named(
  'BulkResult',
  Type.Object(
    {
      count: Type.Integer({ description: 'How many jobs the request acted on.' }),
      job_ids: Type.Array(JobId, {
        description: 'The new jobs (retry) or the cancelled ones (cancel), oldest first.',
      }),
    },
    { examples: [{ count: 1, job_ids: ['123456789012'] }] },
  ),
);
