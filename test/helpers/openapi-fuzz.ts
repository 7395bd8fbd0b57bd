import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import fc from 'fast-check';

/**
 * Generates requests for an OpenAPI 3.1 document with fast-check, and checks answers against
 * the document. Only what PIE's document uses is supported: path, query and header parameters,
 * JSON request bodies, and the JSON Schema keywords TypeBox emits (plus `$ref` into the
 * document, resolved by hand for generation and by ajv for validation).
 */

// The document and its schemas are JSON of many shapes; each function reads the keys it needs.
export type Schema = Record<string, any>;

export interface OpenApiDoc {
  paths: Record<string, Record<string, OperationObject>>;
  components?: { schemas?: Record<string, Schema> };
}

interface OperationObject {
  parameters?: { name: string; in: string; required?: boolean; schema: Schema }[];
  requestBody?: { content?: Record<string, { schema?: Schema; example?: unknown }> };
  responses?: Record<string, { content?: Record<string, { schema?: Schema }> }>;
  security?: { bearerAuth?: string[] }[];
}

export interface FuzzOperation {
  method: string;
  /** The templated path, e.g. `/v2/clients/{client_id}`. */
  path: string;
  operation: OperationObject;
  /** JSON pointer of the operation within the document. */
  pointer: string;
}

/** What to send. `path` is raw (already encoded) so that `..` and bad escapes reach PIE. */
export interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
  /** Why this request was generated, for failure reports. */
  label: string;
}

/**
 * Values that reach real code: ids of seeded objects by parameter or property name, and
 * integer ranges that keep requests quick (a claim's `wait_ms`).
 */
export interface Hints {
  strings: Record<string, readonly string[]>;
  integers: Record<string, { min: number; max: number }>;
  /** Generators for a name, used beside the schema's own (say, cursors that decode). */
  arbitraries?: Record<string, fc.Arbitrary<string>>;
}

const pointerPart = (part: string) => part.replace(/~/g, '~0').replace(/\//g, '~1');

export function operationsOf(doc: OpenApiDoc): FuzzOperation[] {
  return Object.entries(doc.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => ({
      method: method.toUpperCase(),
      path,
      operation,
      pointer: `#/paths/${pointerPart(path)}/${method}`,
    })),
  );
}

function resolve(doc: OpenApiDoc, schema: Schema): Schema {
  let current = schema;
  for (let hops = 0; typeof current['$ref'] === 'string'; hops += 1) {
    const ref = current['$ref'];
    if (!ref.startsWith('#/') || hops > 32) throw new Error(`unsupported $ref ${ref}`);
    current = ref
      .slice(2)
      .split('/')
      .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
      .reduce<any>((node, part) => node?.[part], doc);
    if (current === undefined) throw new Error(`dangling $ref ${ref}`);
  }
  return current;
}

// ---------------------------------------------------------------------------------------------
// Valid values from a schema

const JSON_LEAF = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
);
const jsonValue = (depth: number): fc.Arbitrary<unknown> =>
  fc.jsonValue({ maxDepth: depth }).map((value) => (Object.is(value, -0) ? 0 : value));

/** A value the schema accepts. `name` is the property or parameter the value is for. */
export function validValue(
  doc: OpenApiDoc,
  raw: Schema,
  hints: Hints,
  name?: string,
): fc.Arbitrary<unknown> {
  const schema = resolve(doc, raw);
  if ('const' in schema) return fc.constant(schema['const']);
  if (Array.isArray(schema['enum'])) return fc.constantFrom(...(schema['enum'] as unknown[]));
  const alternatives = (schema['anyOf'] ?? schema['oneOf']) as Schema[] | undefined;
  if (alternatives !== undefined) {
    return fc.oneof(...alternatives.map((option) => validValue(doc, option, hints, name)));
  }
  const integerHint = name === undefined ? undefined : hints.integers[name];
  switch (schema['type']) {
    case 'object':
      return validObject(doc, schema, hints);
    case 'array': {
      const items = validValue(doc, schema['items'] ?? {}, hints);
      const constraints = {
        minLength: schema['minItems'] ?? 0,
        maxLength: Math.min(schema['maxItems'] ?? 4, 4),
      };
      return schema['uniqueItems'] === true
        ? fc.uniqueArray(items, { ...constraints, selector: (item) => JSON.stringify(item) })
        : fc.array(items, constraints);
    }
    case 'string':
      return validString(schema, hints, name);
    case 'integer':
      return integerHint !== undefined
        ? fc.integer(integerHint)
        : fc.integer({
            min: schema['minimum'] ?? -1_000_000,
            max: schema['maximum'] ?? 1_000_000,
          });
    case 'number':
      return fc.double({ noNaN: true, noDefaultInfinity: true });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    default:
      // No type: anything JSON (TypeBox's Unknown).
      return jsonValue(2);
  }
}

function validObject(doc: OpenApiDoc, schema: Schema, hints: Hints): fc.Arbitrary<unknown> {
  const properties = (schema['properties'] ?? {}) as Record<string, Schema>;
  const names = Object.keys(properties);
  if (names.length === 0) {
    // A record of anything (TypeBox's Record<string, unknown>): free-form JSON objects.
    return fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), jsonValue(2), {
      maxKeys: 4,
    });
  }
  const record: Record<string, fc.Arbitrary<unknown>> = {};
  for (const name of names) record[name] = validValue(doc, properties[name]!, hints, name);
  return fc.record(record, { requiredKeys: (schema['required'] ?? []) as string[] });
}

function validString(schema: Schema, hints: Hints, name?: string): fc.Arbitrary<string> {
  const options: fc.Arbitrary<string>[] = [];
  const hinted = name === undefined ? undefined : hints.strings[name];
  const custom = name === undefined ? undefined : hints.arbitraries?.[name];
  if (custom !== undefined) options.push(custom);
  if (hinted !== undefined && hinted.length > 0) options.push(fc.constantFrom(...hinted));
  const examples = schema['examples'] as string[] | undefined;
  if (Array.isArray(examples) && examples.length > 0) options.push(fc.constantFrom(...examples));
  const min = (schema['minLength'] as number | undefined) ?? 0;
  const max = (schema['maxLength'] as number | undefined) ?? 64;
  const fits = (value: string) => value.length >= min && value.length <= max;
  if (schema['format'] === 'uuid') options.push(fc.uuid());
  else if (schema['format'] === 'date-time') {
    options.push(
      fc
        .date({ min: new Date('2000-01-01'), max: new Date('2100-01-01'), noInvalidDate: true })
        .map((date) => date.toISOString()),
    );
  } else if (typeof schema['pattern'] === 'string') {
    options.push(fc.stringMatching(new RegExp(schema['pattern'])).filter(fits));
  } else {
    options.push(fc.string({ unit: 'binary', minLength: min, maxLength: Math.min(max, 64) }));
  }
  // Seeded ids and named generators first: they reach real rows and real code.
  return (hinted !== undefined && hinted.length > 0) || custom !== undefined
    ? fc.oneof({ arbitrary: options[0]!, weight: 4 }, ...options.slice(1))
    : fc.oneof(...options);
}

// ---------------------------------------------------------------------------------------------
// Invalid values

/** Values of every JSON kind; a schema refuses most of them for any one property. */
export const anyJson = fc.oneof(
  JSON_LEAF,
  fc.array(JSON_LEAF, { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), JSON_LEAF, { maxKeys: 3 }),
);

/** Path segment text PIE must refuse or survive: unicode, very long, NUL, `..`, bad escapes. */
export const garbageSegment: fc.Arbitrary<{ raw: string; note: string }> = fc.oneof(
  fc
    .string({ unit: 'binary', minLength: 1, maxLength: 40 })
    .map((text) => ({ raw: encodeURIComponent(text), note: 'unicode' })),
  fc
    .integer({ min: 129, max: 4000 })
    .map((length) => ({ raw: 'a'.repeat(length), note: `${length} characters` })),
  fc.constantFrom(
    { raw: 'a%00b', note: 'NUL' },
    { raw: '%00', note: 'NUL only' },
    { raw: '..', note: 'dot-dot' },
    { raw: '%2E%2E', note: 'encoded dot-dot' },
    { raw: '..%2F..%2Fetc%2Fpasswd', note: 'traversal' },
    { raw: '%2F', note: 'encoded slash' },
    { raw: '%', note: 'lone percent' },
    { raw: '%zz', note: 'bad escape' },
    { raw: '%E0%A4%A', note: 'truncated UTF-8 escape' },
    { raw: '%C3%28', note: 'invalid UTF-8' },
    { raw: '%ED%A0%80', note: 'UTF-8 surrogate' },
    { raw: '%F0%9F%92%A9', note: 'emoji' },
    { raw: '%20', note: 'space' },
    { raw: "'%3B%20drop%20table%20jobs%3B--", note: 'SQL' },
    { raw: '-1', note: 'negative' },
    { raw: '1e400', note: 'huge number' },
    { raw: '999999999999999999999999', note: 'long digits' },
    { raw: '0000000000000', note: '13 digits' },
  ),
);

// Raw JSON text with numbers or nesting no JS value can carry (PIE sees what JSON.parse makes).
const hugeNumberText = fc.constantFrom(
  '1e400',
  '-1e400',
  '123456789012345678901234567890',
  '9007199254740993',
  '-0',
  '1.7976931348623157e308',
  '5e-324',
);
const unpairedSurrogates = fc.constantFrom<unknown>(
  '\ud800',
  'tail \udfff',
  { text: '\ud83d' },
  { '\udc00': 1 },
  ['\ud800'],
  { route: '\ud800' },
);
const nested = (depth: number, leaf: string, array: boolean) =>
  array
    ? '['.repeat(depth) + leaf + ']'.repeat(depth)
    : '{"a":'.repeat(depth) + leaf + '}'.repeat(depth);

export interface BodyCase {
  text: string;
  note: string;
}

/**
 * Bodies for a request schema: valid ones, and valid ones broken in one way (a wrong type, a
 * missing required field, an unknown field, a huge number, deep nesting, a non-object, bad JSON,
 * prototype keys, lone surrogates).
 */
export function bodyCases(doc: OpenApiDoc, schema: Schema, hints: Hints): fc.Arbitrary<BodyCase> {
  const resolved = resolve(doc, schema);
  const valid = validValue(doc, resolved, hints) as fc.Arbitrary<Record<string, unknown>>;
  const properties = Object.keys((resolved['properties'] ?? {}) as Record<string, Schema>);
  const required = (resolved['required'] ?? []) as string[];
  const pick = <T>(list: readonly T[]) => fc.constantFrom(...list);
  const json = (value: unknown, note: string): BodyCase => ({ text: JSON.stringify(value), note });

  const cases: fc.Arbitrary<BodyCase>[] = [
    valid.map((value) => json(value, 'valid')),
    valid.map((value) => json(value, 'valid')),
    fc
      .tuple(valid, fc.string({ minLength: 1, maxLength: 12 }), anyJson)
      .filter(([, key]) => !properties.includes(key))
      .map(([value, key, extra]) => json({ ...value, [key]: extra }, `unknown field "${key}"`)),
    fc.constantFrom(
      { text: '[]', note: 'array body' },
      { text: '"text"', note: 'string body' },
      { text: '42', note: 'number body' },
      { text: 'null', note: 'null body' },
      { text: 'true', note: 'boolean body' },
      { text: '{', note: 'truncated JSON' },
      { text: "{'a': 1}", note: 'single quotes' },
      { text: '{"a": 1,}', note: 'trailing comma' },
      { text: '\uFEFF{}', note: 'byte order mark' },
      { text: '{"__proto__": {"admin": true}}', note: '__proto__ key' },
      { text: '{"constructor": {"prototype": {"admin": true}}}', note: 'constructor.prototype' },
      { text: '{"a": "\\u0000"}', note: 'NUL in a value' },
      { text: '{"\\ud800": "\\udfff"}', note: 'lone surrogates' },
    ),
    fc
      .tuple(
        fc.integer({ min: 2, max: 5000 }),
        fc.boolean(),
        pick(properties.length > 0 ? properties : ['x']),
      )
      .map(([depth, array, key]) => ({
        text: `{${JSON.stringify(key)}: ${nested(depth, '1', array)}}`,
        note: `nesting ${depth} deep in "${key}"`,
      })),
  ];
  if (properties.length > 0) {
    cases.push(
      fc.tuple(valid, pick(properties), anyJson).map(([value, key, wrong]) => ({
        ...json({ ...value, [key]: wrong }, `"${key}" replaced`),
      })),
      fc.tuple(valid, pick(properties), hugeNumberText).map(([value, key, number]) => ({
        text: JSON.stringify({ ...value, [key]: '@@' }).replace('"@@"', number),
        note: `"${key}" = ${number}`,
      })),
      fc
        .tuple(valid, pick(properties), fc.string({ unit: 'binary', maxLength: 300 }))
        .map(([value, key, text]) => json({ ...value, [key]: text }, `"${key}" unicode text`)),
      // Text JSON can carry but UTF-8 (and so PostgreSQL) cannot: unpaired surrogates, also
      // deep inside free-form objects. JSON.stringify writes them as \ud800 escapes.
      fc
        .tuple(valid, pick(properties), unpairedSurrogates)
        .map(([value, key, odd]) =>
          json({ ...value, [key]: odd }, `"${key}" with an unpaired surrogate`),
        ),
      // Numbers past a double's range inside free-form objects: JSON.parse makes them Infinity.
      fc.tuple(valid, pick(properties), hugeNumberText).map(([value, key, number]) => ({
        text: JSON.stringify({ ...value, [key]: { n: '@@' } }).replace('"@@"', number),
        note: `"${key}".n = ${number}`,
      })),
    );
  }
  if (required.length > 0) {
    cases.push(
      fc.tuple(valid, pick(required)).map(([value, key]) => {
        const { [key]: _dropped, ...rest } = value;
        return json(rest, `missing "${key}"`);
      }),
    );
  }
  return fc.oneof(...cases);
}

// ---------------------------------------------------------------------------------------------
// Answers

export interface Answer {
  status: number;
  contentType: string;
  text: string;
}

/**
 * Checks an answer against the operation: no 5xx, the status documented, error bodies
 * `{success: false, message}`, and the body valid against the documented schema for that
 * status and media type. Returns the problems found (empty when the answer is fine).
 */
export function answerChecker(doc: OpenApiDoc) {
  const ajv = addFormats.default(new Ajv2020({ strict: false, allErrors: true }));
  // The whole document is one schema resource, so `$ref: '#/components/...'` resolves in it.
  ajv.addSchema({ ...doc, $id: 'openapi' });
  const validators = new Map<string, ValidateFunction>();
  const validator = (pointer: string) => {
    let validate = validators.get(pointer);
    if (validate === undefined) {
      validate = ajv.compile({ $ref: `openapi${pointer}` });
      validators.set(pointer, validate);
    }
    return validate;
  };

  return (operation: FuzzOperation, answer: Answer): string[] => {
    const problems: string[] = [];
    if (answer.status >= 500) problems.push(`server error ${answer.status}`);
    const code = String(answer.status);
    const documented =
      operation.operation.responses?.[code] ?? operation.operation.responses?.[`${code[0]}XX`];
    if (documented === undefined) problems.push(`status ${code} is not documented`);

    let body: unknown;
    if (answer.text !== '') {
      try {
        body = JSON.parse(answer.text);
      } catch {
        body = undefined;
      }
    }
    if (answer.status >= 400) {
      const error = body as { success?: unknown; message?: unknown } | undefined;
      if (error?.success !== false || typeof error.message !== 'string' || error.message === '') {
        problems.push(`error body is not {success:false, message}: ${answer.text.slice(0, 200)}`);
      }
    }
    if (documented === undefined) return problems;
    const media = Object.keys(documented.content ?? {});
    if (media.length === 0) {
      if (answer.text !== '') problems.push(`status ${code} documents no body but one came`);
      return problems;
    }
    const type = media.find((name) => answer.contentType.startsWith(name));
    if (type === undefined) {
      problems.push(`content type "${answer.contentType}" is not one of ${media.join(', ')}`);
      return problems;
    }
    if (type !== 'application/json') return problems;
    if (body === undefined) {
      problems.push(`body is not JSON: ${answer.text.slice(0, 200)}`);
      return problems;
    }
    const validate = validator(
      `${operation.pointer}/responses/${code}/content/${pointerPart(type)}/schema`,
    );
    if (!validate(body)) {
      problems.push(
        `body does not match the ${code} schema: ${ajv.errorsText(validate.errors)}; ` +
          answer.text.slice(0, 300),
      );
    }
    return problems;
  };
}
