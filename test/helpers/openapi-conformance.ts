import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import type { Scope } from '../../src/auth/caller.js';
import { fillPath } from './api-operations.js';
import type { ApiResponse, TestServer } from './test-server.js';

/**
 * Holds PIE's answers to the OpenAPI document it serves: every request a conformance test
 * sends goes through `send`, which checks the answer against what the document says of that
 * operation and status, and records the (operation, status) pair as covered. Works on whatever
 * the document is: inline schemas or `$ref`s into `components` (schemas, responses, headers),
 * and any set of documented statuses.
 */

// The document is JSON of many shapes; each function reads the keys it needs.
type Json = Record<string, any>;

export interface OpenApiDocument {
  paths: Record<string, Record<string, Json>>;
  components?: Json;
}

/** One operation of the document, with its responses resolved. */
export interface DocumentedOperation {
  /** `METHOD /templated/path`, e.g. `GET /v2/clients/{client_id}`: how tests name it. */
  key: string;
  method: string;
  path: string;
  /** The bearer scope it declares, if any. */
  scope: Scope | undefined;
  /** Documented status keys (`200`, `4XX`, ...) to their response objects and pointers. */
  responses: Map<string, { response: Json; pointer: string }>;
}

export interface ConformanceRequest {
  /** Path parameters; every `{name}` of the path must have one. */
  params?: Record<string, string>;
  /** Query string, without the `?`. */
  query?: string;
  /** A token, or null for none; default: the server's admin token. */
  token?: string | null;
  body?: unknown;
  rawBody?: string;
  headers?: Record<string, string>;
  /** The status the request is meant to provoke; another one is a problem. */
  expect?: number;
  /** What the request provokes, for failure reports. */
  why?: string;
  /**
   * A status the document does not list is no problem (the rest is still checked): for a
   * provoker whose status the document does not know yet.
   */
  allowUndocumented?: boolean;
  /** Wraps the request, e.g. to send it while the database is unreachable. */
  around?: (send: () => Promise<ApiResponse>) => Promise<ApiResponse>;
}

/** Statuses whose /v2 answers carry Retry-After, and document it (PIE's contract). */
const RETRY_STATUSES = new Set([429, 503]);

const pointerPart = (part: string) => part.replace(/~/g, '~0').replace(/\//g, '~1');

export class Conformance {
  readonly operations: DocumentedOperation[];
  /** Pair (`METHOD /path STATUS`) to how many answers covered it. */
  readonly covered = new Map<string, number>();
  /** Problems found since the last `takeProblems`. */
  private problems: string[] = [];
  private readonly ajv: Ajv2020;
  private readonly validators = new Map<string, ValidateFunction>();

  private constructor(readonly doc: OpenApiDocument) {
    this.ajv = addFormats.default(new Ajv2020({ strict: false, allErrors: true }));
    // The whole document is one schema resource, so `#/components/schemas/...` (and any other
    // pointer into it) resolves from every schema compiled below.
    this.ajv.addSchema({ ...doc, $id: 'openapi-document' });
    this.operations = Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.entries(methods)
        .filter(([method]) => HTTP_METHODS.has(method))
        .map(([method, operation]) => this.describe(path, method, operation)),
    );
  }

  /** Reads the document the server publishes. */
  static async load(server: TestServer): Promise<Conformance> {
    const response = await server.get('/openapi.json', { token: null });
    if (response.status !== 200) throw new Error(`GET /openapi.json: ${response.status}`);
    return Conformance.of(response.body as OpenApiDocument);
  }

  static of(doc: OpenApiDocument): Conformance {
    return new Conformance(doc);
  }

  operation(key: string): DocumentedOperation | undefined {
    return this.operations.find((operation) => operation.key === key);
  }

  /** Every documented pair, `METHOD /path STATUS`. */
  documentedPairs(): string[] {
    return this.operations.flatMap((operation) =>
      [...operation.responses.keys()].map((status) => `${operation.key} ${status}`),
    );
  }

  /** Whether `status` is documented for the operation (exactly, or by a `4XX` range). */
  documents(operation: DocumentedOperation, status: number): boolean {
    return this.responseKey(operation, status) !== undefined;
  }

  /**
   * Sends one request for the operation named `key` and checks the answer: its status is
   * documented for the operation, its body matches the schema documented for that status and
   * content type (no body where none is documented), documented headers that came are valid
   * and required ones came, and a /v2 429 or 503 has a documented Retry-After. Problems are
   * kept for `takeProblems`; the pair is recorded as covered when its status is documented.
   */
  async send(
    server: TestServer,
    key: string,
    request: ConformanceRequest = {},
  ): Promise<ApiResponse> {
    const operation = this.operation(key);
    if (operation === undefined) {
      throw new Error(`a provoker sends ${key}, which the document does not list`);
    }
    const path = fillPath(operation.path, request.params ?? {});
    const url = request.query === undefined ? path : `${path}?${request.query}`;
    const call = () =>
      server.call(operation.method, url, {
        token: request.token,
        body: request.body,
        rawBody: request.rawBody,
        headers: request.headers,
      });
    const response = await (request.around === undefined ? call() : request.around(call));
    const where = `${key} (${request.why ?? 'request'}: ${operation.method} ${url})`;
    const found = this.problemsOf(operation, response, request.allowUndocumented === true);
    if (request.expect !== undefined && response.status !== request.expect) {
      found.push(`expected ${request.expect}, got ${response.status}`);
    }
    for (const problem of found) {
      this.problems.push(
        `${where} answered ${response.status}: ${problem}; body ${show(response)}`,
      );
    }
    const documented = this.responseKey(operation, response.status);
    if (documented !== undefined) {
      const pair = `${key} ${documented}`;
      this.covered.set(pair, (this.covered.get(pair) ?? 0) + 1);
    }
    return response;
  }

  /** `send`, then the body, throwing when the status is not `expect` (a later step needs it). */
  async must<T = any>(
    server: TestServer,
    key: string,
    request: ConformanceRequest & { expect: number },
  ): Promise<T> {
    const response = await this.send(server, key, request);
    if (response.status !== request.expect) {
      throw new Error(
        `${key} (${request.why ?? 'request'}): expected ${request.expect}, got ` +
          `${response.status}: ${show(response)}\n${this.problems.join('\n')}`,
      );
    }
    return response.body as T;
  }

  /** The problems found so far, cleared. */
  takeProblems(): string[] {
    const problems = this.problems;
    this.problems = [];
    return problems;
  }

  /** What is wrong with `answer` as the operation's, by the document (see `send`). */
  problemsOf(
    operation: DocumentedOperation,
    answer: ApiResponse,
    allowUndocumented = false,
  ): string[] {
    const problems: string[] = [];
    if (answer.status >= 500 && answer.status !== 503) problems.push('a server error');
    const isApi = operation.path.startsWith('/v2/');
    if (isApi && answer.status >= 400) problems.push(...errorBodyProblems(answer));
    if (isApi && RETRY_STATUSES.has(answer.status) && !answer.headers.has('retry-after')) {
      problems.push('no Retry-After header');
    }
    const code = this.responseKey(operation, answer.status);
    if (code === undefined) {
      if (!allowUndocumented) {
        const listed = [...operation.responses.keys()].join(', ');
        problems.push(`status ${answer.status} is not documented (documented: ${listed})`);
      }
      return problems;
    }
    const { response, pointer } = operation.responses.get(code)!;
    problems.push(...this.checkHeaders(operation, answer, response, pointer));
    problems.push(...this.checkBody(answer, response, pointer, code));
    return problems;
  }

  private checkBody(answer: ApiResponse, response: Json, pointer: string, code: string) {
    const content = (response['content'] ?? {}) as Record<string, Json>;
    const media = Object.keys(content);
    const empty = answer.body === undefined;
    if (media.length === 0) return empty ? [] : [`${code} documents no body, but one came`];
    if (empty) return [`${code} documents a body (${media.join(', ')}), but none came`];
    const contentType = (answer.headers.get('content-type') ?? '').split(';')[0]!.trim();
    const type = media.find((name) => mediaMatches(name, contentType));
    if (type === undefined) {
      return [`content type "${contentType}" is not documented (${media.join(', ')})`];
    }
    const schemaPointer = `${pointer}/content/${pointerPart(type)}/schema`;
    if (content[type]!['schema'] === undefined) return [];
    // Non-JSON media (Prometheus text) are validated as the text they are.
    const value =
      /json/.test(type) || typeof answer.body === 'string'
        ? answer.body
        : JSON.stringify(answer.body);
    const validate = this.validator(schemaPointer);
    if (validate(value)) return [];
    return [`the body does not match the ${code} schema: ${this.ajv.errorsText(validate.errors)}`];
  }

  private checkHeaders(
    operation: DocumentedOperation,
    answer: ApiResponse,
    response: Json,
    pointer: string,
  ) {
    const problems: string[] = [];
    const documented = new Map<string, { header: Json; pointer: string }>();
    for (const [name, raw] of Object.entries((response['headers'] ?? {}) as Record<string, Json>)) {
      const resolved = this.resolve(raw, `${pointer}/headers/${pointerPart(name)}`);
      documented.set(name.toLowerCase(), { header: resolved.value, pointer: resolved.pointer });
    }
    for (const [name, { header, pointer: headerPointer }] of documented) {
      const value = answer.headers.get(name);
      if (value === null) {
        if (header['required'] === true) problems.push(`required header ${name} is missing`);
        continue;
      }
      if (header['schema'] === undefined) continue;
      const validate = this.validator(`${headerPointer}/schema`);
      const schema = this.resolve(header['schema'], `${headerPointer}/schema`).value;
      if (!validate(headerValue(value, schema))) {
        problems.push(
          `header ${name}: ${JSON.stringify(value)} does not match its schema: ` +
            this.ajv.errorsText(validate.errors),
        );
      }
    }
    if (
      operation.path.startsWith('/v2/') &&
      RETRY_STATUSES.has(answer.status) &&
      !documented.has('retry-after')
    ) {
      problems.push(`the document lists no Retry-After header for ${answer.status}`);
    }
    return problems;
  }

  private responseKey(operation: DocumentedOperation, status: number): string | undefined {
    const exact = String(status);
    if (operation.responses.has(exact)) return exact;
    const range = `${exact[0]}XX`;
    return operation.responses.has(range) ? range : undefined;
  }

  private describe(path: string, method: string, operation: Json): DocumentedOperation {
    const pointer = `#/paths/${pointerPart(path)}/${method}`;
    const responses = new Map<string, { response: Json; pointer: string }>();
    for (const [code, raw] of Object.entries((operation['responses'] ?? {}) as Json)) {
      // `default` documents no particular status: an answer must be documented by its own.
      if (code === 'default') continue;
      const resolved = this.resolve(raw as Json, `${pointer}/responses/${code}`);
      responses.set(code.toUpperCase(), { response: resolved.value, pointer: resolved.pointer });
    }
    const security = operation['security'] as { bearerAuth?: Scope[] }[] | undefined;
    return {
      key: `${method.toUpperCase()} ${path}`,
      method: method.toUpperCase(),
      path,
      scope: security?.[0]?.bearerAuth?.[0],
      responses,
    };
  }

  /** Follows `$ref`s within the document (to components.responses, components.headers). */
  private resolve(node: Json, pointer: string): { value: Json; pointer: string } {
    let value = node;
    let at = pointer;
    for (let hops = 0; typeof value['$ref'] === 'string'; hops += 1) {
      const ref: string = value['$ref'];
      if (!ref.startsWith('#/') || hops > 16) throw new Error(`unsupported $ref ${ref} at ${at}`);
      at = ref;
      value = ref
        .slice(2)
        .split('/')
        .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
        .reduce<any>((inner, part) => inner?.[part], this.doc);
      if (value === undefined) throw new Error(`dangling $ref ${ref}`);
    }
    return { value, pointer: at };
  }

  private validator(pointer: string): ValidateFunction {
    let validate = this.validators.get(pointer);
    if (validate === undefined) {
      validate = this.ajv.compile({ $ref: `openapi-document${pointer}` });
      this.validators.set(pointer, validate);
    }
    return validate;
  }
}

const HTTP_METHODS = new Set(['get', 'put', 'post', 'delete', 'patch', 'head', 'options']);

/** `application/json` documented matches `application/json`; `text/*` matches `text/plain`. */
function mediaMatches(documented: string, sent: string): boolean {
  if (documented === sent || documented === '*/*') return true;
  return documented.endsWith('/*') && sent.startsWith(documented.slice(0, -1));
}

/** A header's text as the value its schema describes (Retry-After is an integer). */
function headerValue(text: string, schema: Json): unknown {
  const type = schema['type'];
  if ((type === 'integer' || type === 'number') && /^-?[0-9.]+$/.test(text)) return Number(text);
  return text;
}

/** PIE's errors are `{success: false, message}`, whatever the document says of them. */
function errorBodyProblems(answer: ApiResponse): string[] {
  const error = answer.body as { success?: unknown; message?: unknown } | undefined;
  if (error?.success === false && typeof error.message === 'string' && error.message !== '') {
    return [];
  }
  return ['the error body is not {success: false, message}'];
}

function show(response: ApiResponse): string {
  const text = typeof response.body === 'string' ? response.body : JSON.stringify(response.body);
  return (text ?? '(empty)').slice(0, 400);
}
