import type { JobError } from '../../../domain/delivery.js';
import type { HandlerOf } from '../handler-adapter.js';

/**
 * Requests to a TrueFoundry control plane, as the `{"type": "truefoundry"}` handler makes them:
 * to the handler's `base_url`, with `Authorization: Bearer <token>` where the token is read from
 * PIE's environment variable `token_env`. No redirect is followed, each request has a timeout,
 * bodies are read up to a bound, and an error keeps an excerpt of the body with the token masked.
 *
 * The routes used (trigger.ts, run-status.ts):
 * - `POST /api/svc/v1/jobs/trigger` with `{deploymentId | applicationId, input: {command?,
 *   params}}`, answered with `{message, jobRunName, data: JobRun}`.
 * - `GET /api/svc/v1/jobs/{jobId}/runs/{jobRunName}`, answered with `{data: JobRun}`, where
 *   `jobId` is the job's *application* id and `data.status` is one of CREATED, SCHEDULED,
 *   RUNNING, FINISHED, FAILED, TERMINATION_REQUESTED, TERMINATING, TERMINATED, UNKNOWN
 *   (TrueFoundry's API reference, "Get Job Run", operation `Job.getRun`, and the `JobRunStatus`
 *   type of its TypeScript SDK).
 */

export type TrueFoundryHandler = HandlerOf<'truefoundry'>;

export interface TrueFoundryOptions {
  /** How long one request to the control plane may take, body included. */
  timeoutMs: number;
  /** Where `handler.token_env` is looked up (default `process.env`). */
  env?: NodeJS.ProcessEnv;
  /** An undici dispatcher for the requests, e.g. an address guard's (default: global fetch's). */
  dispatcher?: RequestInit['dispatcher'];
}

/** The most of an error response's body kept in a job error. */
const BODY_EXCERPT_CHARS = 512;
/** The most of a response body read at all. */
const MAX_BODY_BYTES = 1024 * 1024;

/** The handler's token from `token_env`, or the job error for a missing one. */
export function readToken(
  handler: TrueFoundryHandler,
  env: NodeJS.ProcessEnv = process.env,
): string | JobError {
  const token = env[handler.token_env];
  if (token !== undefined && token.trim() !== '') return token.trim();
  const error: JobError = {
    code: 'token_missing',
    message: `the TrueFoundry token variable ${handler.token_env} is not set in PIE's environment`,
    token_env: handler.token_env,
  };
  return error;
}

/** `path` under `base` (a path prefix in `base` is kept), or undefined for a non-http(s) base. */
export function endpoint(base: string, path: string): URL | undefined {
  try {
    const url = new URL(path, base.endsWith('/') ? base : `${base}/`);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : undefined;
  } catch {
    return undefined;
  }
}

export function invalidBaseUrl(handler: TrueFoundryHandler): JobError {
  return {
    code: 'invalid_handler',
    message: `the truefoundry handler's base_url is not an http(s) URL: ${handler.base_url}`,
  };
}

export type SendResult =
  | { kind: 'response'; response: Response; text: string }
  | { kind: 'error'; reason: 'aborted' | 'transient' | 'refused'; error: JobError };

/** One request with the bearer token, no redirects followed, and the body read under a timeout. */
export async function send(
  url: URL,
  init: { method: 'GET' | 'POST'; body?: string },
  token: string,
  outer: AbortSignal,
  options: TrueFoundryOptions,
): Promise<SendResult> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = AbortSignal.any([outer, timeout]);
  const headers: Record<string, string> = {
    authorization: `Bearer ${token}`,
    accept: 'application/json',
  };
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  try {
    const response = await fetch(url, {
      method: init.method,
      headers,
      ...(init.body !== undefined && { body: init.body }),
      redirect: 'manual',
      signal,
      ...(options.dispatcher !== undefined && { dispatcher: options.dispatcher }),
    });
    const text = await readBody(response);
    return { kind: 'response', response, text };
  } catch (error) {
    if (outer.aborted)
      return { kind: 'error', reason: 'aborted', error: abortedError(outer.reason) };
    if (timeout.aborted) {
      return {
        kind: 'error',
        reason: 'transient',
        error: {
          code: 'request_timeout',
          message: `TrueFoundry did not answer ${init.method} ${url.pathname} within ${options.timeoutMs} ms`,
        },
      };
    }
    const cause = causeOf(error);
    if (cause.code === 'ERR_ADDRESS_NOT_ALLOWED') {
      return {
        kind: 'error',
        reason: 'refused',
        error: { code: 'address_not_allowed', message: cause.message },
      };
    }
    return {
      kind: 'error',
      reason: 'transient',
      error: {
        code: 'connection_error',
        message: `could not reach TrueFoundry at ${url.origin}: ${cause.message}`,
        ...(cause.code !== undefined && { cause: cause.code }),
      },
    };
  }
}

/** The body as text, at most MAX_BODY_BYTES of it (the rest is discarded). */
async function readBody(response: Response): Promise<string> {
  if (response.body === null) return '';
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
    if (size >= MAX_BODY_BYTES) {
      await reader.cancel();
      break;
    }
  }
  return Buffer.concat(chunks).subarray(0, MAX_BODY_BYTES).toString('utf8');
}

export function httpError(
  response: Response,
  text: string,
  token: string,
  handler: TrueFoundryHandler,
  what: string,
): JobError {
  const status = response.status;
  if (status >= 300 && status < 400) {
    const location = response.headers.get('location');
    return {
      code: 'redirect',
      message: `TrueFoundry answered ${what} with a redirect (HTTP ${status}), which PIE does not follow`,
      status,
      ...(location !== null && { location }),
    };
  }
  if (status === 401 || status === 403) {
    return {
      code: 'unauthorized',
      message: `TrueFoundry refused the token in ${handler.token_env} for ${what} (HTTP ${status})`,
      status,
      token_env: handler.token_env,
    };
  }
  return {
    code: status === 429 ? 'rate_limited' : status >= 500 ? 'server_error' : 'rejected',
    message: `TrueFoundry answered ${what} with HTTP ${status}`,
    status,
    body: excerpt(text, token),
  };
}

/** The job's deadline passing is a `timeout`; any other abort (shutdown) is `aborted`. */
export function abortedError(reason: unknown): JobError {
  if (isDeadline(reason)) {
    return { code: 'timeout', message: 'the job passed its deadline before TrueFoundry answered' };
  }
  const why = reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : '';
  return {
    code: 'aborted',
    message: `the request to TrueFoundry was abandoned${why === '' ? '' : `: ${why}`}`,
  };
}

function isDeadline(reason: unknown): boolean {
  if (typeof reason !== 'object' || reason === null) return false;
  return (
    (reason as { code?: unknown }).code === 'timeout' ||
    (reason as { name?: unknown }).name === 'TimeoutError'
  );
}

/** The innermost error of a fetch failure (fetch wraps socket errors in `TypeError.cause`). */
function causeOf(error: unknown): { message: string; code?: string } {
  let current: unknown = error;
  for (let depth = 0; depth < 5; depth += 1) {
    const next = (current as { cause?: unknown } | null)?.cause;
    if (next === undefined || next === null) break;
    current = next;
  }
  const message = current instanceof Error ? current.message : String(current);
  const code = (current as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? { message, code } : { message };
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

export function field(value: unknown, key: string): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  return (value as Record<string, unknown>)[key];
}

/** At most BODY_EXCERPT_CHARS of a body, the token masked should the server echo it. */
export function excerpt(text: string, token: string): string {
  return text.split(token).join('[redacted]').slice(0, BODY_EXCERPT_CHARS);
}
