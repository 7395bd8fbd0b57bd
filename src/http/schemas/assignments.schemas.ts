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

export const AssignmentKey = Identifier(
  'Stable capability key within the domain or service scope. Updating the same key archives ' +
    'the previous active assignment and creates a new active revision.',
  'default',
);

export const DomainAssignmentKeyParams = Type.Object({
  client_id: ClientId,
  domain_id: DomainId,
  key: AssignmentKey,
});
export const ServiceAssignmentKeyParams = Type.Object({
  client_id: ClientId,
  domain_id: DomainId,
  service_id: ServiceId,
  key: AssignmentKey,
});

export const AssignmentStatus = named(
  'AssignmentStatus',
  StringEnum(['active', 'archived'] as const, {
    description:
      'Active assignments are runnable. Archived assignments are retained as historical ' +
      'revisions for jobs that used them.',
  }),
);

export const ServiceUpdate = named(
  'ServiceUpdate',
  Type.Object(
    {
      service_id: ServiceId,
      static_features: {
        ...JsonObject,
        description:
          'Feature key-value pairs merged into provided_features; a null value removes the key. ' +
          'Mandatory features without defaults must be provided.',
      },
    },
    {
      additionalProperties: false,
      description:
        'Patch provided_features for one service during domain default assignment upsert ' +
        '(validated against the target version freeze).',
    },
  ),
);

const assignmentFields = {
  model_id: ModelId,
  model_version: ModelVersion,
  status: Type.Optional({
    ...AssignmentStatus,
    description:
      'New assignment revisions are active by default. Use archived to retire a capability ' +
      'without launching new jobs from it.',
  }),
  config: Type.Optional({
    ...JsonObject,
    description: 'Passed to the model handler with every job; part of the revision.',
  }),
  priority: Type.Optional({
    ...Priority,
    description:
      'The default priority (-100..100, default 0) of jobs run through this assignment; a ' +
      'run-job body may set its own. Part of the revision.',
  }),
  metadata: Type.Optional({
    ...JsonObject,
    description: 'Free-form notes stored with a new revision; a change to it alone is no change.',
  }),
  service_updates: Type.Optional(
    Type.Array(ServiceUpdate, {
      description:
        'Optional patches for non-departed services on domain default assignment upsert only; ' +
        'incompatible services still yield 422 with blocking_services.',
    }),
  ),
};

// The published example of an assignment body (seed 001, in test/fixtures/seeds/).
const EXAMPLE = {
  model_id: 'example-model',
  model_version: '2.0.0',
  service_updates: [{ service_id: 'svc-001', static_features: { route: 'route-a' } }],
};

export const PutAssignmentBody = named(
  'PutAssignmentRequest',
  Type.Object(assignmentFields, {
    additionalProperties: false,
    description: 'The key comes from the path; a body carrying key is a 400.',
    examples: [EXAMPLE],
  }),
);

export const PostAssignmentBody = named(
  'PostAssignmentRequest',
  Type.Object(
    {
      key: {
        ...AssignmentKey,
        description: 'Required on collection POST routes; omitted on keyed PUT routes.',
      },
      ...assignmentFields,
    },
    { additionalProperties: false, examples: [{ key: 'default', ...EXAMPLE }] },
  ),
);

export const Assignment = named(
  'Assignment',
  Type.Object(
    {
      assignment_id: Type.String({
        format: 'uuid',
        description: 'Unique revision identifier for this assignment row.',
      }),
      client_id: Type.String(),
      domain_id: Type.String({ description: 'Domain identifier within a client.' }),
      service_id: Nullable(Type.String({ description: 'null at domain scope.' })),
      scope: StringEnum(['domain', 'service'] as const),
      key: Type.String(),
      model_id: Type.String({ description: 'Model registry identifier.' }),
      model_version: Type.String({ description: 'Model version string within the registry.' }),
      status: AssignmentStatus,
      config: JsonObject,
      priority: Type.Integer({ minimum: -100, maximum: 100 }),
      metadata: JsonObject,
      created_at: Timestamp,
      archived_at: Nullable(Timestamp),
    },
    {
      examples: [
        {
          assignment_id: '0b6f4f5e-7f0a-4d52-9f51-2f1c8f1e9a10',
          client_id: 'client-1',
          domain_id: 'south_australia',
          service_id: 'service-1',
          scope: 'service',
          key: 'default',
          model_id: 'example-model',
          model_version: '2.0.0',
          status: 'active',
          config: {},
          priority: 0,
          metadata: {},
          created_at: '2026-01-01T00:00:00.000Z',
          archived_at: null,
        },
      ],
    },
  ),
);

export const ListAssignmentsQuery = Type.Object({
  status: Type.Optional({
    ...AssignmentStatus,
    description: 'Only keys whose current revision has this status.',
  }),
});
