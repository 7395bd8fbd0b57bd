import type { Handler } from '../../domain/handlers.js';
import type {
  DeliveryContext,
  DeliveryOutcome,
  Envelope,
  JobError,
} from '../../domain/delivery.js';

/**
 * The `{"type": "truefoundry"}` handler (SPEC section 5): PIE triggers a run of a TrueFoundry
 * job and keeps the run's name; the job's code completes the PIE job through the callback in the
 * envelope, and the dispatcher polls the run so that a run that ends FAILED or TERMINATED without
 * a completion fails the job.
 *
 * TrueFoundry's API, as used here (control plane `base_url`, `Authorization: Bearer <token>`):
 * - `POST /api/svc/v1/jobs/trigger` with `{deploymentId | applicationId, input: {command?,
 *   params}}` answers `{message, jobRunName, data: JobRun}` (seed 004).
 * - `GET /api/svc/v1/jobs/{jobId}/runs/{jobRunName}` answers `{data: JobRun}`, where `jobId` is
 *   the job's *application* id and `data.status` is one of CREATED, SCHEDULED, RUNNING, FINISHED,
 *   FAILED, TERMINATION_REQUESTED, TERMINATING, TERMINATED, UNKNOWN (TrueFoundry's API reference,
 *   "Get Job Run", operation `Job.getRun`, and the `JobRunStatus` type of its TypeScript SDK).
 *
 * TrueFoundry job params are string key/values that fill the job's command template, so the
 * envelope travels as one string param, `pie_envelope`, holding the envelope's JSON: the job's
 * command reads it as `{{pie_envelope}}` (or from the matching environment variable).
 */

export type TrueFoundryHandler = Extract<Handler, { type: 'truefoundry' }>;

/** The `input.params` key that carries the envelope's JSON. */
export const TRUEFOUNDRY_ENVELOPE_PARAM = 'pie_envelope';

export interface TrueFoundryOptions {
  /** How long one request to the control plane may take, body included. */
  timeoutMs: number;
  /** Where `handler.token_env` is looked up (default `process.env`). */
  env?: NodeJS.ProcessEnv;
  /** An undici dispatcher for the requests, e.g. an address guard's (default: global fetch's). */
  dispatcher?: RequestInit['dispatcher'];
}

export interface TrueFoundryReadOptions extends TrueFoundryOptions {
  /** Aborts the read (e.g. on shutdown). */
  signal?: AbortSignal;
  /**
   * The job's application id, which the run-status route needs. Defaults to
   * `handler.application_id`; a handler configured by `deployment_id` alone must supply it.
   */
  applicationId?: string;
}

export type TrueFoundryRunState =
  | {
      state: 'active' | 'succeeded' | 'failed';
      /** TrueFoundry's status, as it reported it (FAILED, TERMINATED, ...). */
      status: string;
      /** The run's `error` and `exitCode`, when TrueFoundry reported them. */
      error?: string;
      exitCode?: number;
    }
  | { state: 'unknown'; error: JobError };

/** Retry-After values beyond this are capped. */
export const MAX_RETRY_AFTER_MS = 60 * 60 * 1000;
/** The most of an error response's body kept in a job error. */
const BODY_EXCERPT_CHARS = 512;
/** The most of a response body read at all. */
const MAX_BODY_BYTES = 1024 * 1024;

const SUCCEEDED_STATUSES = new Set(['FINISHED', 'SUCCEEDED']);
const FAILED_STATUSES = new Set(['FAILED', 'TERMINATED']);

/** Triggers one run of the handler's job, the envelope in `input.params.pie_envelope`. */
export async function triggerTrueFoundryRun(
  envelope: Envelope,
  handler: TrueFoundryHandler,
  ctx: DeliveryContext,
  options: TrueFoundryOptions,
): Promise<DeliveryOutcome> {
  const token = readToken(handler, options.env);
  if (typeof token !== 'string') return { kind: 'fail', error: token };
  const target = jobTarget(handler);
  if ('code' in target) return { kind: 'fail', error: target };
  const url = endpoint(handler.base_url, 'api/svc/v1/jobs/trigger');
  if (url === undefined) return { kind: 'fail', error: invalidBaseUrl(handler) };
  if (ctx.signal.aborted) return abortedOutcome(ctx.signal.reason);

  const body = JSON.stringify({
    ...target,
    input: { params: { [TRUEFOUNDRY_ENVELOPE_PARAM]: JSON.stringify(envelope) } },
  });
  const answer = await send(url, { method: 'POST', body }, token, ctx.signal, options);
  if (answer.kind === 'error') {
    if (answer.reason === 'aborted') return abortedOutcome(ctx.signal.reason);
    if (answer.reason === 'refused') return { kind: 'fail', error: answer.error };
    return { kind: 'retry', error: answer.error };
  }

  const { response, text } = answer;
  const status = response.status;
  if (status >= 200 && status < 300) {
    const jobRunName = field(parseJson(text), 'jobRunName');
    if (typeof jobRunName === 'string' && jobRunName !== '') {
      return { kind: 'handed-over', reference: jobRunName };
    }
    return {
      kind: 'fail',
      error: {
        code: 'bad_response',
        message: `TrueFoundry answered the trigger with HTTP ${status} but no jobRunName`,
        status,
        body: excerpt(text, token),
      },
    };
  }
  const error = httpError(response, text, token, handler, 'the trigger');
  if (status === 429 || status >= 500) {
    const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'));
    return retryAfterMs === undefined
      ? { kind: 'retry', error }
      : { kind: 'retry', error, retryAfterMs };
  }
  return { kind: 'fail', error };
}

/** Reads the status of a run `triggerTrueFoundryRun` started (its `reference`). */
export async function readTrueFoundryRun(
  handler: TrueFoundryHandler,
  jobRunName: string,
  options: TrueFoundryReadOptions,
): Promise<TrueFoundryRunState> {
  const token = readToken(handler, options.env);
  if (typeof token !== 'string') return { state: 'unknown', error: token };
  const jobId = options.applicationId ?? handler.application_id;
  if (jobId === undefined || jobId === '') {
    return {
      state: 'unknown',
      error: {
        code: 'application_id_required',
        message:
          "TrueFoundry's run-status route is keyed by the job's application id, which this handler (configured by deployment_id) does not name",
      },
    };
  }
  const path = `api/svc/v1/jobs/${encodeURIComponent(jobId)}/runs/${encodeURIComponent(jobRunName)}`;
  const url = endpoint(handler.base_url, path);
  if (url === undefined) return { state: 'unknown', error: invalidBaseUrl(handler) };
  const signal = options.signal ?? new AbortController().signal;
  if (signal.aborted) return { state: 'unknown', error: abortedError(signal.reason) };

  const answer = await send(url, { method: 'GET' }, token, signal, options);
  if (answer.kind === 'error') {
    return {
      state: 'unknown',
      error: answer.reason === 'aborted' ? abortedError(signal.reason) : answer.error,
    };
  }
  const { response, text } = answer;
  if (response.status < 200 || response.status >= 300) {
    const error = httpError(response, text, token, handler, 'the run-status read');
    if (response.status === 404) error.code = 'run_not_found';
    return { state: 'unknown', error };
  }
  const data = field(parseJson(text), 'data');
  const status = field(data, 'status');
  if (typeof status !== 'string' || status === '') {
    return {
      state: 'unknown',
      error: {
        code: 'bad_response',
        message: `TrueFoundry answered the run-status read with HTTP ${response.status} but no data.status`,
        status: response.status,
        body: excerpt(text, token),
      },
    };
  }
  const runError = field(data, 'error');
  const exitCode = field(data, 'exitCode');
  return {
    state: trueFoundryRunState(status),
    status,
    ...(typeof runError === 'string' && runError !== '' && { error: runError }),
    ...(typeof exitCode === 'number' && { exitCode }),
  };
}

/**
 * FINISHED (and SUCCEEDED) → succeeded, FAILED and TERMINATED → failed; everything else
 * (CREATED, SCHEDULED, RUNNING, TERMINATION_REQUESTED, TERMINATING, UNKNOWN, and statuses
 * TrueFoundry may add) → active: the run may still end, and the job's deadline bounds the wait.
 */
export function trueFoundryRunState(status: string): 'active' | 'succeeded' | 'failed' {
  const normalized = status.trim().toUpperCase();
  if (SUCCEEDED_STATUSES.has(normalized)) return 'succeeded';
  if (FAILED_STATUSES.has(normalized)) return 'failed';
  return 'active';
}

/** `Retry-After` as delay-seconds or an HTTP date, in ms, capped at an hour. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  let ms: number;
  if (/^\d+$/.test(text)) ms = Number(text) * 1000;
  else {
    const at = Date.parse(text);
    if (Number.isNaN(at)) return undefined;
    ms = Math.max(0, at - now);
  }
  return Math.min(ms, MAX_RETRY_AFTER_MS);
}

function readToken(handler: TrueFoundryHandler, env: NodeJS.ProcessEnv = process.env) {
  const token = env[handler.token_env];
  if (token !== undefined && token.trim() !== '') return token.trim();
  const error: JobError = {
    code: 'token_missing',
    message: `the TrueFoundry token variable ${handler.token_env} is not set in PIE's environment`,
    token_env: handler.token_env,
  };
  return error;
}

function jobTarget(
  handler: TrueFoundryHandler,
): { deploymentId: string } | { applicationId: string } | JobError {
  const { deployment_id: deploymentId, application_id: applicationId } = handler;
  if (deploymentId !== undefined && applicationId === undefined) return { deploymentId };
  if (applicationId !== undefined && deploymentId === undefined) return { applicationId };
  return {
    code: 'invalid_handler',
    message: 'a truefoundry handler needs exactly one of deployment_id and application_id',
  };
}

/** `path` under `base` (a path prefix in `base` is kept), or undefined for a non-http(s) base. */
function endpoint(base: string, path: string): URL | undefined {
  try {
    const url = new URL(path, base.endsWith('/') ? base : `${base}/`);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : undefined;
  } catch {
    return undefined;
  }
}

function invalidBaseUrl(handler: TrueFoundryHandler): JobError {
  return {
    code: 'invalid_handler',
    message: `the truefoundry handler's base_url is not an http(s) URL: ${handler.base_url}`,
  };
}

type SendResult =
  | { kind: 'response'; response: Response; text: string }
  | { kind: 'error'; reason: 'aborted' | 'transient' | 'refused'; error: JobError };

/** One request with the bearer token, no redirects followed, and the body read under a timeout. */
async function send(
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

function httpError(
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

function abortedOutcome(reason: unknown): DeliveryOutcome {
  const error = abortedError(reason);
  return error.code === 'timeout' ? { kind: 'fail', error } : { kind: 'retry', error };
}

/** The job's deadline passing is a `timeout`; any other abort (shutdown) is `aborted`. */
function abortedError(reason: unknown): JobError {
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

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function field(value: unknown, key: string): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  return (value as Record<string, unknown>)[key];
}

/** At most BODY_EXCERPT_CHARS of a body, the token masked should the server echo it. */
function excerpt(text: string, token: string): string {
  return text.split(token).join('[redacted]').slice(0, BODY_EXCERPT_CHARS);
}
