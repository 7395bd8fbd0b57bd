import { Type } from '@sinclair/typebox';
import {
  ClientId,
  DomainId,
  Identifier,
  JsonObject,
  named,
  Nullable,
  Priority,
  ServiceId,
  StringEnum,
  Timestamp,
} from './common.schemas.js';
import { JobType } from './subscriptions.schemas.js';

export const ScheduleName = Identifier('Schedule name, unique within its domain.', 'nightly-init');

export const ScheduleParams = Type.Object({
  client_id: ClientId,
  domain_id: DomainId,
  name: ScheduleName,
});

export const ScheduleStatus = named(
  'ScheduleStatus',
  StringEnum(['active', 'paused'] as const, {
    description: 'A paused schedule owes no tick; resumed, it owes the first tick after now.',
  }),
);

const Cron = Type.String({
  minLength: 1,
  maxLength: 256,
  description:
    'Five fields (minute hour day-of-month month day-of-week), or six with seconds first. ' +
    'Read by croner: lists, ranges, steps, names (JAN, MON) and L, W and # are accepted.',
  examples: ['30 2 * * *'],
});

const TimeZone = Type.String({
  minLength: 1,
  maxLength: 64,
  description: 'The IANA time zone the cron is read in; daylight saving is followed.',
  examples: ['Australia/Adelaide'],
});

const AssignmentKey = Identifier(
  'Capability key of the assignment the job runs through.',
  'default',
);

const ServicesInitAction = named(
  'ServicesInitAction',
  Type.Object(
    { type: Type.Literal('services_init') },
    {
      additionalProperties: false,
      description:
        "Services init: one inference job per service that has not departed, through the domain's default assignment.",
    },
  ),
);

const RunJobActionInput = named(
  'RunJobActionInput',
  Type.Object(
    {
      type: Type.Literal('run_job'),
      assignment_key: AssignmentKey,
      service_id: Type.Optional({
        ...ServiceId,
        description: "Run the job on this service's assignment; omit for a domain-scope job.",
      }),
      job_type: Type.Optional({ ...JobType, description: 'Defaults to inference.' }),
      input: Type.Optional({ ...JsonObject, description: 'The input of every job a tick starts.' }),
    },
    { additionalProperties: false, description: 'One job through an assignment.' },
  ),
);

/** The run_job action as stored and answered, defaults filled in. */
const RunJobAction = named(
  'RunJobAction',
  Type.Object({
    type: Type.Literal('run_job'),
    assignment_key: Type.String(),
    service_id: Nullable(Type.String()),
    job_type: Type.String(),
    input: JsonObject,
  }),
);

export const ScheduleActionInput = Type.Union([ServicesInitAction, RunJobActionInput], {
  description: 'What each tick does.',
});

export const PutScheduleBody = named(
  'PutScheduleRequest',
  Type.Object(
    {
      cron: Type.Optional(Cron),
      timezone: Type.Optional(TimeZone),
      action: Type.Optional(ScheduleActionInput),
      priority: Type.Optional(
        Nullable({
          ...Priority,
          description:
            "The priority (-100..100) of the jobs a tick starts; null or never set takes the assignment's.",
        }),
      ),
      status: Type.Optional(ScheduleStatus),
    },
    {
      additionalProperties: false,
      description:
        'A new schedule needs `cron` and `action`; `timezone` defaults to UTC and `status` to ' +
        'active. On an update, fields left out keep their stored values.',
      examples: [
        { cron: '30 2 * * *', timezone: 'Australia/Adelaide', action: { type: 'services_init' } },
        {
          cron: '*/15 * * * *',
          action: {
            type: 'run_job',
            assignment_key: 'default',
            service_id: 'service-1',
            job_type: 'inference',
            input: { horizon_min: 15 },
          },
          priority: 10,
        },
      ],
    },
  ),
);

export const Schedule = named(
  'Schedule',
  Type.Object(
    {
      client_id: Type.String(),
      domain_id: Type.String(),
      name: Type.String(),
      cron: Type.String(),
      timezone: Type.String(),
      action: Type.Union([ServicesInitAction, RunJobAction]),
      priority: Nullable(Type.Integer({ minimum: -100, maximum: 100 })),
      status: ScheduleStatus,
      next_run_at: Nullable({ ...Timestamp, description: 'The tick owed; null while paused.' }),
      last_run_at: Nullable({ ...Timestamp, description: 'When the latest tick fired.' }),
      last_batch_id: Nullable(
        Type.String({ description: 'The batch of the latest services init a tick started.' }),
      ),
      last_job_id: Nullable(Type.String({ description: 'The latest job a run_job tick started.' })),
      last_error: Nullable(
        Type.String({
          description: 'Why the latest tick started nothing; null when it succeeded.',
        }),
      ),
      created_at: Timestamp,
      updated_at: Timestamp,
    },
    {
      examples: [
        {
          client_id: 'client-1',
          domain_id: 'south_australia',
          name: 'nightly-init',
          cron: '30 2 * * *',
          timezone: 'Australia/Adelaide',
          action: { type: 'services_init' },
          priority: null,
          status: 'active',
          next_run_at: '2026-01-01T16:00:00.000Z',
          last_run_at: '2025-12-31T16:00:00.012Z',
          last_batch_id: null,
          last_job_id: null,
          last_error: null,
          created_at: '2025-12-01T00:00:00.000Z',
          updated_at: '2025-12-01T00:00:00.000Z',
        },
      ],
    },
  ),
);

export const ListSchedulesQuery = Type.Object({
  status: Type.Optional(ScheduleStatus),
});
