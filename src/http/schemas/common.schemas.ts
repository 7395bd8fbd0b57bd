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

/**
 * Names a schema: the published document declares it once, under `components.schemas`, and
 * refers to it wherever it is used (`src/http/openapi-document.ts` moves it there). Validation
 * and types are unchanged; the name is its JSON Schema `title`.
 */
export function named<T extends TSchema>(name: string, schema: T): T {
  if (typeof schema.description === 'string') descriptions.set(name, schema.description);
  return { ...schema, title: name };
}

const descriptions = new Map<string, string>();

/** The description a named schema was given where it was named. */
export function namedSchemaDescription(name: string): string | undefined {
  return descriptions.get(name);
}

/**
 * A closed set of strings as one `enum` (a union of literals would be published as a list of
 * one-value enums, which generated clients read as plain strings).
 */
export function StringEnum<const T extends readonly string[]>(
  values: T,
  options: { description?: string } = {},
) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
}

export const Problem = named(
  'Problem',
  Type.Object({
    feature: Type.String(),
    message: Type.String(),
  }),
);

export const ErrorResponse = named(
  'Error',
  Type.Object(
    {
      success: Type.Literal(false),
      message: Type.String({ description: 'What went wrong, and what to do about it.' }),
      request_id: Type.Optional(
        Type.String({ description: 'On a 500: the id to quote when reporting it.' }),
      ),
      problems: Type.Optional(Type.Array(Problem)),
      blocking_services: Type.Optional(
        Type.Array(Type.Object({ service_id: Type.String(), problems: Type.Array(Problem) })),
      ),
    },
    { additionalProperties: true, description: 'Every error PIE answers.' },
  ),
);

/** What each error status means, as every route's document says. */
export const ERROR_DESCRIPTIONS = {
  400: 'Validation error: malformed input, invalid path parameters, or a request that fails syntactic validation.',
  401: 'Missing or invalid Authorization bearer token, or an expired one. WWW-Authenticate carries the RFC 6750 Bearer challenge (realm "pie", and error="invalid_token" when a token was refused).',
  403: 'The caller lacks the permission this operation needs.',
  404: 'The resource (or one on its path) does not exist.',
  409: 'Conflict with the current state of the resource.',
  413: 'The request body is larger than the server accepts (PIE_BODY_LIMIT_BYTES).',
  415: 'The request body is not JSON (send Content-Type: application/json).',
  422: 'Semantically invalid request: e.g. domain not active, no model assigned, feature contract mismatch, or invalid feature definitions.',
  429: 'Too many requests from this client (its rate limit), or too many open jobs (its quota); the Retry-After header says how many seconds to wait.',
  503: "The database cannot be reached right now; retry after the Retry-After header's seconds.",
} as const;

export type ErrorStatus = keyof typeof ERROR_DESCRIPTIONS;

const RETRY_AFTER = Type.Integer({ minimum: 1, description: 'Seconds to wait before retrying.' });

/** Response headers an error status carries. */
const ERROR_HEADERS: Partial<Record<ErrorStatus, Record<string, TSchema>>> = {
  401: {
    'www-authenticate': Type.String({
      description: 'RFC 6750: `Bearer realm="pie"`, with `error="invalid_token"` for a bad token.',
    }),
  },
  429: { 'retry-after': RETRY_AFTER },
  503: { 'retry-after': RETRY_AFTER },
};

/**
 * The response schema of one error status of one route, with the example message that route
 * would give (@fastify/swagger publishes `description` as the response's, `headers` as its
 * headers and the first of `examples` as the example).
 */
export function errorResponse(status: ErrorStatus, example: string): TSchema {
  return {
    ...ErrorResponse,
    description: ERROR_DESCRIPTIONS[status],
    ...(ERROR_HEADERS[status] === undefined ? {} : { headers: ERROR_HEADERS[status] }),
    examples: [{ success: false, message: example }],
  };
}

/**
 * The error statuses particular to a route, each with the message that route answers with it
 * (404 for what it looks up, 409 and 422 for its own rules). The statuses every route can
 * answer (400, 401, 403, 413, 415, 429, 503) are added to every /v2 route by
 * `documentCommonErrors`, with examples made from the route's own path and scope.
 */
export function errorResponses(examples: Partial<Record<404 | 409 | 422, string>>) {
  const responses: Record<number, TSchema> = {};
  for (const [status, example] of Object.entries(examples)) {
    responses[Number(status)] = errorResponse(Number(status) as ErrorStatus, example);
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

/** A page of a list; named after its item (`JobPage` for `Job`). */
export const Page = <T extends TSchema>(item: T) => {
  const page = Type.Object({
    items: Type.Array(item),
    next_cursor: Nullable(
      Type.String({ description: 'Pass as cursor for the next page; null on the last.' }),
    ),
  });
  return typeof item.title === 'string' ? named(`${item.title}Page`, page) : page;
};

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
