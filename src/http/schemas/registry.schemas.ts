import { Type } from '@sinclair/typebox';
import { FEATURE_TYPES } from '../../domain/features.js';
import {
  MaxInFlight,
  ModelId,
  ModelVersion,
  named,
  Nullable,
  StringEnum,
  Timestamp,
} from './common.schemas.js';

export const ModelParams = Type.Object({ model_id: ModelId });
export const VersionParams = Type.Object({ model_id: ModelId, version: ModelVersion });

export const PutModelBody = named(
  'PutModelRequest',
  Type.Object(
    { description: Type.Optional(Type.String({ maxLength: 4096 })) },
    { additionalProperties: false, examples: [{ description: 'Predicts service delay' }] },
  ),
);

export const Model = named(
  'Model',
  Type.Object({
    model_id: Type.String(),
    description: Nullable(Type.String()),
    created_at: Timestamp,
    updated_at: Timestamp,
  }),
);

// Deliberately loose: the shape is checked here (400), the meaning by the contract validator,
// which names every problem at once (422).
export const FeatureDefinitionInput = named(
  'FeatureDefinitionInput',
  Type.Object(
    {
      name: Type.String({ description: '1 to 128 characters of A-Za-z0-9._-' }),
      type: Type.String({ description: `One of ${FEATURE_TYPES.join(', ')}.` }),
      required: Type.Optional(Type.Boolean({ default: false })),
      default: Type.Optional(Type.Unknown()),
      values: Type.Optional(
        Type.Array(Type.Unknown(), { description: 'Allowed values of an enum.' }),
      ),
      description: Type.Optional(Type.String()),
    },
    { additionalProperties: false },
  ),
);

export const FeatureType = named('FeatureType', StringEnum(FEATURE_TYPES));

export const FeatureDefinition = named(
  'FeatureDefinition',
  Type.Object({
    name: Type.String(),
    type: FeatureType,
    required: Type.Boolean(),
    default: Type.Optional(Type.Unknown()),
    values: Type.Optional(Type.Array(Type.String())),
    description: Type.Optional(Type.String()),
  }),
);

const Url = Type.String({ minLength: 1, maxLength: 2048 });

const HANDLER_TYPES = ['worker', 'http', 'command', 'truefoundry'] as const;
type HandlerName = (typeof HANDLER_TYPES)[number];

/** A union of handler shapes told apart by `type`, as the document publishes it. */
const taggedByType = (names: Record<HandlerName, string>) => ({
  discriminator: {
    propertyName: 'type',
    mapping: Object.fromEntries(
      HANDLER_TYPES.map((type) => [type, `#/components/schemas/${names[type]}`]),
    ),
  },
});

const WorkerHandler = named(
  'WorkerHandler',
  Type.Object(
    { type: Type.Literal('worker') },
    { additionalProperties: false, description: 'Pull workers claim the jobs.' },
  ),
);
const CommandHandler = named(
  'CommandHandler',
  Type.Object(
    {
      type: Type.Literal('command'),
      command: Type.String({ minLength: 1 }),
      args: Type.Optional(Type.Array(Type.String())),
    },
    { additionalProperties: false, description: 'A local process per job (admin only).' },
  ),
);
const TrueFoundryHandler = named(
  'TrueFoundryHandler',
  Type.Object(
    {
      type: Type.Literal('truefoundry'),
      base_url: Url,
      deployment_id: Type.Optional(Type.String({ minLength: 1 })),
      application_id: Type.Optional(Type.String({ minLength: 1 })),
      token_env: Type.String({
        minLength: 1,
        description: 'Environment variable holding the API token.',
      }),
    },
    { additionalProperties: false, description: 'A TrueFoundry job run per job.' },
  ),
);

const WEBHOOK_SECRET =
  'Standard Webhooks signing secret: "whsec_" and the standard base64 of 24 to 64 bytes ' +
  '(anything else is a 422). Omitted, PIE generates one and shows it once, in this answer. ' +
  'Write-only.';

export const Handler = named(
  'Handler',
  Type.Union(
    [
      WorkerHandler,
      named(
        'HttpHandler',
        Type.Object(
          {
            type: Type.Literal('http'),
            url: Url,
            secret: Type.Optional(Type.String({ description: WEBHOOK_SECRET })),
          },
          { additionalProperties: false, description: 'A signed POST of each job to a URL.' },
        ),
      ),
      CommandHandler,
      TrueFoundryHandler,
    ],
    {
      description: 'How jobs reach the model handler; defaults to {"type": "worker"}.',
      ...taggedByType({
        worker: 'WorkerHandler',
        http: 'HttpHandler',
        command: 'CommandHandler',
        truefoundry: 'TrueFoundryHandler',
      }),
    },
  ),
);

/** The handler as answers show it: an http handler's secret only in the answer that made it. */
export const HandlerView = named(
  'HandlerView',
  Type.Union(
    [
      WorkerHandler,
      named(
        'HttpHandlerView',
        Type.Object(
          {
            type: Type.Literal('http'),
            url: Url,
            secret: Type.Optional(
              Type.String({
                description: 'Only a secret PIE generated, in the answer to that request.',
              }),
            ),
          },
          { additionalProperties: false },
        ),
      ),
      CommandHandler,
      TrueFoundryHandler,
    ],
    {
      description: 'The handler; an http handler without its secret.',
      ...taggedByType({
        worker: 'WorkerHandler',
        http: 'HttpHandlerView',
        command: 'CommandHandler',
        truefoundry: 'TrueFoundryHandler',
      }),
    },
  ),
);

const JobType = Type.String({ pattern: '^[a-z][a-z0-9_]{0,63}$', examples: ['inference'] });

export const PutVersionBody = named(
  'PutModelVersionRequest',
  Type.Object(
    {
      features: Type.Array(FeatureDefinitionInput, { maxItems: 1000 }),
      job_types: Type.Optional(
        Type.Array(JobType, { minItems: 1, maxItems: 32, uniqueItems: true }),
      ),
      handler: Type.Optional(Handler),
      timeout_s: Type.Optional(Type.Integer({ minimum: 1, maximum: 7 * 24 * 3600 })),
      max_attempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
      max_in_flight: Type.Optional(MaxInFlight),
    },
    {
      additionalProperties: false,
      examples: [
        {
          features: [
            { name: 'route', type: 'string', required: true },
            { name: 'capacity', type: 'integer', required: false, default: 60 },
          ],
          job_types: ['inference', 'training'],
          handler: { type: 'worker' },
          timeout_s: 600,
          max_attempts: 3,
          max_in_flight: 8,
        },
      ],
    },
  ),
);

export const Version = named(
  'ModelVersion',
  Type.Object({
    model_id: Type.String(),
    model_version: Type.String(),
    features: Type.Array(FeatureDefinition),
    job_types: Type.Array(Type.String()),
    handler: HandlerView,
    timeout_s: Type.Integer(),
    max_attempts: Type.Integer(),
    max_in_flight: Nullable(Type.Integer()),
    created_at: Timestamp,
    updated_at: Timestamp,
  }),
);
