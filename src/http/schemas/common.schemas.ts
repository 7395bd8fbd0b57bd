import { Type, type TSchema } from '@sinclair/typebox';

/** Identifiers in paths: 1 to 128 characters of A-Za-z0-9._-. */
export const IDENTIFIER_PATTERN = '^[A-Za-z0-9._-]{1,128}$';

export const Identifier = (description: string, example: string) =>
  Type.String({
    minLength: 1,
    maxLength: 128,
    pattern: IDENTIFIER_PATTERN,
    description,
    examples: [example],
  });

export const ClientId = Identifier('Client (tenant) identifier.', 'client-1');
export const DomainId = Identifier('Domain identifier within a client.', 'south_australia');
export const ServiceId = Identifier('Service identifier within a domain.', 'service-1');
export const ModelId = Identifier('Model registry identifier.', 'example-model');
export const ModelVersion = Identifier('Model version string within the registry.', '2.0.0');

export const Timestamp = Type.String({ format: 'date-time' });
export const JsonObject = Type.Record(Type.String(), Type.Unknown());
export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const Problem = Type.Object({
  feature: Type.String(),
  message: Type.String(),
});

export const ErrorResponse = Type.Object(
  {
    success: Type.Literal(false),
    message: Type.String({ description: 'Human-readable error message' }),
    request_id: Type.Optional(Type.String()),
    problems: Type.Optional(Type.Array(Problem)),
    blocking_services: Type.Optional(
      Type.Array(Type.Object({ service_id: Type.String(), problems: Type.Array(Problem) })),
    ),
  },
  {
    additionalProperties: true,
    examples: [{ success: false, message: 'client "client-1" not found' }],
  },
);

const ERROR_DESCRIPTIONS = {
  400: 'Validation error — malformed input, invalid path parameters, or request that fails syntactic validation.',
  401: 'Missing or invalid Authorization bearer token, expired token, or token rejected by the authorization layer. WWW-Authenticate carries the RFC 6750 Bearer challenge (realm "pie", and error="invalid_token" when a token was refused).',
  403: 'Authenticated caller lacks the permission required for this operation.',
  404: 'Requested resource was not found.',
  409: 'Conflict with the current state of the resource.',
  422: 'Semantically invalid request — e.g. domain not active, no model assigned, feature contract mismatch, or invalid feature definitions.',
  429: 'Too many requests from this client (its rate limit), or too many open jobs (its quota); the Retry-After header says how many seconds to wait.',
} as const;

export type ErrorStatus = keyof typeof ERROR_DESCRIPTIONS;

// A 429 also documents Retry-After (@fastify/swagger publishes a response schema's `headers`
// as the OpenAPI response headers).
const TooManyRequests = {
  ...ErrorResponse,
  description: ERROR_DESCRIPTIONS[429],
  headers: {
    'retry-after': Type.Integer({ minimum: 1, description: 'Seconds to wait before retrying.' }),
  },
  examples: [
    {
      success: false,
      message:
        'too many requests: the limit is 1000 per second per client (bursts of 2000); retry after 1 s',
    },
  ],
};

/** Response schemas for the error statuses a route can answer. */
export function errorResponses(...statuses: ErrorStatus[]) {
  const responses: Record<number, TSchema> = {};
  for (const status of statuses) {
    responses[status] =
      status === 429
        ? { ...TooManyRequests }
        : { ...ErrorResponse, description: ERROR_DESCRIPTIONS[status] };
  }
  return responses;
}

export const PageQuery = Type.Object({
  limit: Type.Optional(
    Type.Integer({ minimum: 1, maximum: 500, default: 50, description: 'Page size (1 to 500).' }),
  ),
  cursor: Type.Optional(
    Type.String({ maxLength: 1024, description: 'The next_cursor of the previous page.' }),
  ),
});

export const Page = <T extends TSchema>(item: T) =>
  Type.Object({
    items: Type.Array(item),
    next_cursor: Nullable(
      Type.String({ description: 'Pass as cursor for the next page; null on the last.' }),
    ),
  });

export const Priority = Type.Integer({
  minimum: -100,
  maximum: 100,
  description:
    'Higher is handed out first; within one priority, jobs go round-robin across ' +
    '(client, domain). Defaults to the assignment priority (itself 0 unless set).',
  examples: [0],
});

/** A concurrency limit as a request sets it: null (or never set) is unlimited. */
export const MaxInFlight = Nullable(
  Type.Integer({
    minimum: 0,
    maximum: 1_000_000,
    description:
      'The most jobs dispatched or running at once; claims hand out no more and push dispatch ' +
      'waits, nothing fails. null removes the limit; 0 holds every job queued (a pause). ' +
      'Omitted on an update: unchanged.',
    examples: [8],
  }),
);
