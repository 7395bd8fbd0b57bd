import createClient, {
  type Client as FetchClient,
  type ClientOptions,
  type ClientPathsWithMethod,
  type Middleware,
} from 'openapi-fetch';
import type { components, paths } from './schema.js';

export type { components, operations, paths } from './schema.js';

/** An openapi-fetch client for PIE: `GET`, `PUT`, `POST`, `DELETE`, typed by route. */
export type PieClient = FetchClient<paths>;

/** Where a bearer token comes from: a fixed string, or asked for on every request. */
export type TokenSource = string | (() => string | Promise<string>);

export interface PieClientOptions extends Omit<ClientOptions, 'baseUrl'> {
  /** PIE's address, e.g. `http://127.0.0.1:8080` (the routes start with /v2). */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <token>` on every request that does not set its own. */
  token: TokenSource;
}

/**
 * A client for PIE's API. Every call is checked against the generated schema: the route, its
 * path and query parameters, its body and the shape of each answer.
 */
export function createPieClient({ baseUrl, token, ...options }: PieClientOptions): PieClient {
  const client = createClient<paths>({ ...options, baseUrl });
  client.use(bearerAuth(token));
  return client;
}

/**
 * Adds the bearer token to each request. A request that brings its own Authorization header
 * keeps it: a worker completes a job with that job's callback token, not the client's.
 */
export function bearerAuth(token: TokenSource): Middleware {
  return {
    async onRequest({ request }) {
      if (request.headers.has('authorization')) return request;
      const value = typeof token === 'string' ? token : await token();
      request.headers.set('authorization', `Bearer ${value}`);
      return request;
    },
  };
}

/** PIE's answer to a request it refused or failed: the status and `{success: false, message}`. */
export class PieApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    super(`PIE answered ${status}: ${messageOf(body)}`);
    this.name = 'PieApiError';
  }
}

function messageOf(body: unknown): string {
  if (typeof body === 'object' && body !== null && 'message' in body) {
    return String(body.message);
  }
  return typeof body === 'string' && body !== '' ? body : 'no message';
}

/**
 * The data of a successful answer, or a thrown PieApiError:
 * `const job = orThrow(await pie.GET('/v2/.../jobs/{job_id}', { params }))`.
 */
export function orThrow<Result extends { data?: unknown; error?: unknown; response: Response }>(
  result: Result,
): NonNullable<Result['data']> {
  return dataOf(result) as NonNullable<Result['data']>;
}

function dataOf(result: { data?: unknown; error?: unknown; response: Response }): unknown {
  if (result.error !== undefined) throw new PieApiError(result.response.status, result.error);
  return result.data;
}

// ---------------------------------------------------------------------------------------------
// Paging: every list route answers {items, next_cursor} and takes the cursor back as `cursor`.

type GetPath = ClientPathsWithMethod<PieClient, 'get'>;
type OkJson<Operation> = Operation extends {
  responses: { 200: { content: { 'application/json': infer Body } } };
}
  ? Body
  : never;

/** One page of a list route. */
export interface Page<Item> {
  items: Item[];
  next_cursor: string | null;
}

/** The GET routes that answer pages and take a cursor. */
export type ListPath = {
  [P in GetPath]: OkJson<paths[P]['get']> extends Page<unknown>
    ? paths[P]['get'] extends { parameters: { query?: { cursor?: string } } }
      ? P
      : never
    : never;
}[GetPath];

/** What one item of a list route is, e.g. a Job for `.../jobs`. */
export type ListItem<P extends ListPath> =
  OkJson<paths[P]['get']> extends Page<infer Item> ? Item : never;

/** A list route's path and query parameters; the cursor is the helper's to set. */
export type ListParams<P extends ListPath> = Omit<
  paths[P]['get']['parameters'],
  'header' | 'cookie' | 'query'
> & {
  query?: Omit<NonNullable<paths[P]['get']['parameters']['query']>, 'cursor'>;
};

/** Routes without path parameters may leave the parameters out. */
type ListArgs<P extends ListPath> =
  object extends ListParams<P>
    ? [params?: ListParams<P>, init?: PagingInit]
    : [params: ListParams<P>, init?: PagingInit];

export interface PagingInit {
  signal?: AbortSignal;
}

/** The shape openapi-fetch's GET has once the route is no longer a literal. */
type UntypedGet = (
  path: string,
  init: { params: { path?: unknown; query: Record<string, unknown> }; signal?: AbortSignal },
) => Promise<{ data?: unknown; error?: unknown; response: Response }>;

/**
 * Every page of a list route, first to last, following `next_cursor`. A refused page throws a
 * PieApiError; a cursor that comes back again ends with an error rather than looping forever.
 *
 *   for await (const page of pages(pie, '/v2/clients/{client_id}/domains', { path })) ...
 */
export async function* pages<P extends ListPath>(
  client: PieClient,
  path: P,
  ...[params, init]: ListArgs<P>
): AsyncGenerator<Page<ListItem<P>>, void, undefined> {
  const get = client.GET as unknown as UntypedGet;
  const given = params as { path?: unknown; query?: Record<string, unknown> } | undefined;
  const seen = new Set<string>();
  let cursor: string | undefined;
  do {
    const query = { ...given?.query };
    if (cursor !== undefined) query['cursor'] = cursor;
    const result = await get(path, { params: { path: given?.path, query }, signal: init?.signal });
    const page = dataOf(result) as Page<ListItem<P>>;
    yield page;
    cursor = page.next_cursor ?? undefined;
    if (cursor !== undefined) {
      if (seen.has(cursor)) throw new Error(`${path} repeated the cursor ${cursor}`);
      seen.add(cursor);
    }
  } while (cursor !== undefined);
}

/** Every item of a list route, page after page (see pages). */
export async function* listAll<P extends ListPath>(
  client: PieClient,
  path: P,
  ...args: ListArgs<P>
): AsyncGenerator<ListItem<P>, void, undefined> {
  for await (const page of pages(client, path, ...args)) yield* page.items;
}

// ---------------------------------------------------------------------------------------------
// NAMED SCHEMAS. Each is the document's `components.schemas` entry of that name; a name the
// document no longer has is a compile error here.

type Schemas = components['schemas'];

export type Job = Schemas['Job'];
export type JobStatus = Schemas['JobStatus'];
export type JobError = Schemas['JobError'];
/** A tenant (PIE's word is client; not this library's PieClient). */
export type Client = Schemas['Client'];
export type Domain = Schemas['Domain'];
export type Service = Schemas['Service'];
export type Model = Schemas['Model'];
export type ModelVersion = Schemas['ModelVersion'];
/** How a version's jobs are run: a union tagged by `type`. */
export type Handler = Schemas['Handler'];
export type Assignment = Schemas['Assignment'];
export type Subscription = Schemas['Subscription'];
export type Schedule = Schemas['Schedule'];
export type Batch = Schemas['Batch'];
/** The body of every error answer, `{success: false, message}` (named so as not to hide the global Error). */
export type ErrorBody = Schemas['Error'];
