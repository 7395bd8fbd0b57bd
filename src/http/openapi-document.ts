import { isDeepStrictEqual } from 'node:util';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { errorResponse, namedSchemaDescription } from './schemas/common.schemas.js';

/**
 * The published OpenAPI document, made from the routes' own schemas (one source for
 * validation, types and the document), in two steps:
 *
 * - `documentCommonErrors` gives every /v2 route the error statuses any route can answer, each
 *   with an example made from that route (its path parameters, its scope);
 * - `publishNamedSchemas` moves every schema named with `named()` (its `title`) to
 *   `components.schemas` and refers to it, so generated clients can name `Job` or `Error`.
 */

/** Statuses every /v2 route can answer; 413 and 415 only where a body is read. */
const COMMON = [400, 401, 403, 429, 503] as const;
const WITH_BODY = [413, 415] as const;
type CommonStatus = (typeof COMMON)[number] | (typeof WITH_BODY)[number];

/** What a path parameter names, and the example value the document uses for it. */
const PARAMETERS: Record<string, { example: string; invalid: string }> = {
  client_id: { example: 'client-1', invalid: 'pattern "^[A-Za-z0-9._-]{1,128}$"' },
  domain_id: { example: 'south_australia', invalid: 'pattern "^[A-Za-z0-9._-]{1,128}$"' },
  service_id: { example: 'service-1', invalid: 'pattern "^[A-Za-z0-9._-]{1,128}$"' },
  model_id: { example: 'example-model', invalid: 'pattern "^[A-Za-z0-9._-]{1,128}$"' },
  version: { example: '2.0.0', invalid: 'pattern "^[A-Za-z0-9._-]{1,128}$"' },
  key: { example: 'default', invalid: 'pattern "^[A-Za-z0-9._-]{1,128}$"' },
  name: { example: 'nightly-init', invalid: 'pattern "^[A-Za-z0-9._-]{1,128}$"' },
  job_id: { example: '123456789012', invalid: 'pattern "^[0-9]{12}$"' },
  subscription_id: { example: '2489e9ad-2ee2-4e00-8ec9-32d5f69181c0', invalid: 'format "uuid"' },
  batch_id: { example: '5f0c2a8e-7d1b-4c3e-9a55-2b6f1d0e9c47', invalid: 'format "uuid"' },
};

/** Adds the common error statuses to each /v2 route registered after it, unless it has them. */
export function documentCommonErrors(app: FastifyInstance) {
  app.addHook('onRoute', (route) => {
    const response = route.schema?.response as Record<string, unknown> | undefined;
    if (response === undefined) return;
    const methods = [route.method].flat();
    const statuses: CommonStatus[] = methods.some((method) =>
      ['POST', 'PUT', 'DELETE'].includes(method),
    )
      ? [...COMMON, ...WITH_BODY]
      : [...COMMON];
    for (const status of statuses) {
      response[status] ??= errorResponse(status, commonExample(status, route));
    }
  });
}

function commonExample(status: CommonStatus, route: RouteOptions): string {
  const parameters = [...route.url.matchAll(/:(\w+)/g)].map((match) => match[1]!);
  const last = parameters.at(-1);
  switch (status) {
    case 400:
      return last === undefined
        ? 'invalid request: body must NOT have additional properties'
        : `invalid request: params/${last} must match ${PARAMETERS[last]?.invalid ?? 'its schema'}`;
    case 401:
      return 'missing Authorization header; send "Authorization: Bearer <token>"';
    case 403: {
      const scope = (route.config as { scope?: string } | undefined)?.scope;
      return scope === undefined
        ? `this token may not act on client "${PARAMETERS['client_id']!.example}"`
        : `this token lacks the "${scope}" scope needed here`;
    }
    case 413:
      return 'request body is too large';
    case 415:
      return 'unsupported content type; send application/json';
    case 429:
      return 'too many requests: the limit is 1000 per second per client (bursts of 2000); retry after 1 s';
    case 503:
      return 'database unavailable; retry shortly';
  }
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });

/**
 * Moves every named schema of the document (one with a `title`) to `components.schemas` and
 * puts a `$ref` where it was. A name used for two different schemas is a programming error,
 * thrown when the document is first built (the OpenAPI test builds it). What one use adds at
 * the top (a response's `description`, its `examples`, its `headers`, a `default`) stays with that use; the
 * component's description is the one given where the schema was named.
 *
 * Also: a union with a `discriminator` is published as `oneOf` (its members exclude each
 * other by their tag), and a success response that has no description gets one from its
 * status and schema instead of "Default Response".
 */
export function publishNamedSchemas(
  built: { openapiObject: object } | { swaggerObject: object },
): object {
  if (!('openapiObject' in built)) throw new Error('PIE publishes OpenAPI 3, not Swagger 2');
  const document = structuredClone(built.openapiObject) as JsonObject;
  const components = (document['components'] ??= {}) as JsonObject;
  const schemas = (components['schemas'] ??= {}) as JsonObject;

  const hoist = (node: Json): Json => {
    if (Array.isArray(node)) return node.map(hoist);
    if (node === null || typeof node !== 'object') return node;
    const out: JsonObject = {};
    for (const [key, value] of Object.entries(node)) {
      // `examples` are data, never schemas: left as they are.
      out[key] = key === 'examples' || key === 'example' ? value : hoist(value);
    }
    if (out['discriminator'] !== undefined && out['anyOf'] !== undefined) {
      out['oneOf'] = out['anyOf'];
      delete out['anyOf'];
    }
    const name = out['title'];
    if (typeof name !== 'string') return out;
    const { description: _d, examples: _e, headers: _h, default: byDefault, ...definition } = out;
    const known = schemas[name] as JsonObject | undefined;
    if (known === undefined) {
      schemas[name] = definition;
    } else {
      const { description: _known, ...knownDefinition } = known;
      if (!isDeepStrictEqual(knownDefinition, definition)) {
        throw new Error(
          `two different schemas are both named "${name}": ` +
            `${JSON.stringify(knownDefinition)} and ${JSON.stringify(definition)}`,
        );
      }
    }
    const description = namedSchemaDescription(name);
    if (description !== undefined) (schemas[name] as JsonObject)['description'] = description;
    // A use may give its own default (OpenAPI 3.1 allows keywords beside `$ref`).
    return byDefault === undefined ? ref(name) : { ...ref(name), default: byDefault };
  };

  for (const path of Object.values((document['paths'] ?? {}) as JsonObject)) {
    for (const operation of Object.values(path as JsonObject)) {
      if (operation === null || typeof operation !== 'object' || Array.isArray(operation)) continue;
      publishOperation(operation, hoist);
    }
  }
  return document;
}

const STATUS_TEXT: Record<string, string> = {
  '200': 'OK',
  '201': 'Created',
  '202': 'Accepted',
  '204': 'No content',
};

function publishOperation(operation: JsonObject, hoist: (node: Json) => Json) {
  const body = (operation['requestBody'] as JsonObject | undefined)?.['content'] as
    JsonObject | undefined;
  for (const media of Object.values(body ?? {})) {
    const m = media as JsonObject;
    if (m['schema'] !== undefined) m['schema'] = hoist(m['schema']);
  }
  for (const parameter of (operation['parameters'] ?? []) as JsonObject[]) {
    if (parameter['schema'] !== undefined) parameter['schema'] = hoist(parameter['schema']);
  }
  for (const [status, response] of Object.entries((operation['responses'] ?? {}) as JsonObject)) {
    const r = response as JsonObject;
    for (const media of Object.values((r['content'] ?? {}) as JsonObject)) {
      const m = media as JsonObject;
      const schema = m['schema'] as JsonObject | undefined;
      if (schema === undefined) continue;
      const title = schema['title'];
      m['schema'] = hoist(schema);
      if (r['description'] === 'Default Response') {
        r['description'] =
          `${STATUS_TEXT[status] ?? status}` + (typeof title === 'string' ? `: ${title}` : '');
      }
    }
    for (const header of Object.values((r['headers'] ?? {}) as JsonObject)) {
      const h = header as JsonObject;
      if (h['schema'] !== undefined) h['schema'] = hoist(h['schema']);
    }
    if (r['description'] === 'Default Response') r['description'] = STATUS_TEXT[status] ?? status;
  }
}
