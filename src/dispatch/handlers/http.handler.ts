import { request, type Dispatcher } from 'undici';
import type { DeliveryOutcome, Envelope, JobError } from '../../domain/delivery.js';
import { AddressNotAllowedError, type AddressGuard } from './address-guard.js';
import type {
  CancelNotice,
  CancelOutcome,
  DeliveryContext,
  HandlerAdapter,
} from './handler-adapter.js';
import { parseRetryAfter } from './retry-after.js';
import { signWebhook } from './webhook-signature.js';

/**
 * The `{"type": "http"}` handler: PIE POSTs the envelope to the handler's url, signed per
 * Standard Webhooks with the handler's secret. A 2xx hands the job over (its completion comes
 * through the callback); a 429 or 5xx, a timeout or a connection failure is retried (after
 * Retry-After when given); a redirect, another 4xx or an address the guard refuses fails it.
 */

export interface HttpDeliveryOptions {
  /**
   * How long to wait for the response headers once the request is sent, and at most between
   * two chunks of the body. Connecting has its own limit in the guard's dispatcher.
   */
  timeoutMs: number;
  guard: AddressGuard;
}

const MAX_BODY_CHARS = 512;
// Enough bytes for MAX_BODY_CHARS characters of any UTF-8 text.
const MAX_BODY_BYTES = MAX_BODY_CHARS * 4;

/**
 * The http kind's adapter: delivers through the address guard, under the request timeout, and
 * tells the handler of a cancel the same way.
 */
export function createHttpAdapter(options: HttpDeliveryOptions): HandlerAdapter<'http'> {
  return {
    type: 'http',
    deliver: (envelope, handler, ctx) => deliverHttp(envelope, handler, ctx, options),
    cancel: (handler, notice, signal) => cancelHttp(notice, handler, signal, options),
  };
}

/**
 * A job's delivery is one Standard Webhooks message however many attempts it takes, so its
 * `webhook-id` names the job alone: a receiver that de-duplicates on it sees a retry as the
 * message it may already have. The envelope's `attempt` and callback token name the attempt.
 */
export function deliveryWebhookId(jobId: string): string {
  return jobId;
}

/** The cancel notice is another message about the job: its own id, the same on every send. */
export function cancelWebhookId(jobId: string): string {
  return `${jobId}_cancelled`;
}

/**
 * POSTs `{"type": "job.cancelled", "job_id"}` to the handler's url, signed like a delivery.
 * Its `webhook-id` is `{job_id}_cancelled`, so a receiver that de-duplicates on it does not
 * take it for the delivery. Only a 2xx counts as delivered; nothing is retried.
 */
export async function cancelHttp(
  notice: CancelNotice,
  handler: { url: string; secret: string },
  signal: AbortSignal,
  options: HttpDeliveryOptions,
): Promise<CancelOutcome> {
  const url = parseHttpUrl(handler.url);
  if (url === undefined) {
    return cancelFailed('invalid_url', 'the http handler url must be an absolute http(s) URL');
  }
  const body = JSON.stringify({ type: 'job.cancelled', job_id: notice.job_id });
  try {
    const response = await request(url, {
      method: 'POST',
      dispatcher: options.guard.dispatcher,
      signal,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      maxRedirections: 0,
      headers: signedHeaders(handler.secret, cancelWebhookId(notice.job_id), body),
      body,
    });
    await response.body.dump();
    if (response.statusCode >= 200 && response.statusCode < 300) return { delivered: true };
    return cancelFailed('http_status', `the http handler answered ${response.statusCode}`);
  } catch (error) {
    return cancelFailed(
      error instanceof AddressNotAllowedError ||
        (error instanceof Error && error.cause instanceof AddressNotAllowedError)
        ? 'address_not_allowed'
        : 'request_failed',
      error instanceof Error ? error.message : String(error),
    );
  }
}

function cancelFailed(code: string, message: string): CancelOutcome {
  return { delivered: false, error: { code, message } };
}

/** Standard Webhooks headers for a JSON body PIE sends a handler. */
function signedHeaders(secret: string, id: string, body: string): Record<string, string> {
  const timestamp = Math.floor(Date.now() / 1000);
  return {
    'content-type': 'application/json',
    'user-agent': 'pie-dispatcher',
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signWebhook(secret, id, timestamp, body),
  };
}

export async function deliverHttp(
  envelope: Envelope,
  handler: { url: string; secret: string },
  ctx: DeliveryContext,
  options: HttpDeliveryOptions,
): Promise<DeliveryOutcome> {
  const url = parseHttpUrl(handler.url);
  if (url === undefined) {
    return fail('invalid_url', 'the http handler url must be an absolute http(s) URL');
  }
  if (ctx.signal.aborted) return aborted(ctx.signal);

  const body = JSON.stringify(envelope);
  let response: Dispatcher.ResponseData;
  try {
    response = await request(url, {
      method: 'POST',
      dispatcher: options.guard.dispatcher,
      signal: ctx.signal,
      // undici's own timers, unlike aborting through a signal, close the stalled connection
      // without opening an unused replacement (nodejs/undici#5845).
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      maxRedirections: 0,
      headers: {
        ...signedHeaders(handler.secret, deliveryWebhookId(envelope.job_id), body),
        // W3C Trace Context, so a traced handler continues the delivery's trace. Outside the
        // signature: the signed body carries the same value for handlers that check it.
        ...(envelope.traceparent === undefined ? {} : { traceparent: envelope.traceparent }),
      },
      body,
    });
  } catch (error) {
    if (ctx.signal.aborted) return aborted(ctx.signal);
    if (
      errorCode(error) === 'UND_ERR_HEADERS_TIMEOUT' ||
      errorCode(error) === 'UND_ERR_BODY_TIMEOUT'
    ) {
      return retry('request_timeout', `no response within ${options.timeoutMs} ms`);
    }
    return requestFailure(error);
  }
  return responseOutcome(response);
}

async function responseOutcome({
  statusCode: status,
  headers,
  body,
}: Dispatcher.ResponseData): Promise<DeliveryOutcome> {
  if (status >= 200 && status < 300) {
    await body.dump();
    return { kind: 'handed-over' };
  }
  if (status >= 300 && status < 400) {
    await body.dump();
    const location = first(headers.location)?.slice(0, MAX_BODY_CHARS);
    return fail(
      'redirect',
      `the http handler answered ${status} (Location: ${location ?? 'none'}); redirects are not followed`,
      { status, location },
    );
  }
  const text = await bodyStart(body);
  if (status === 429 || status >= 500) {
    const retryAfterMs = parseRetryAfter(headers['retry-after']);
    const error = httpError(status === 429 ? 'rate_limited' : 'http_5xx', status, text);
    return retryAfterMs === undefined
      ? { kind: 'retry', error }
      : { kind: 'retry', error, retryAfterMs };
  }
  return { kind: 'fail', error: httpError('http_4xx', status, text) };
}

function requestFailure(error: unknown): DeliveryOutcome {
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : undefined;
  const refused = [error, cause].find((e) => e instanceof AddressNotAllowedError);
  if (refused) {
    const { host, address, kind } = refused;
    return fail('address_not_allowed', refused.message, { host, address, address_kind: kind });
  }
  // Refused, reset, DNS failure, TLS failure: the handler may be back on a later attempt.
  const message = error instanceof Error ? error.message : String(error);
  const code = errorCode(error);
  return retry('connection_failed', `could not reach the http handler: ${message}`, {
    ...(code === undefined ? {} : { cause: code }),
  });
}

function aborted(signal: AbortSignal): DeliveryOutcome {
  const reason: unknown = signal.reason;
  const why = reason instanceof Error ? reason.message : String(reason);
  return retry('aborted', `delivery was cancelled: ${why}`);
}

function httpError(code: string, status: number, body: string): JobError {
  const message = `the http handler answered ${status}${body === '' ? '' : `: ${body}`}`;
  return { code, message, status, body };
}

function fail(
  code: string,
  message: string,
  details: Record<string, unknown> = {},
): DeliveryOutcome {
  return { kind: 'fail', error: { ...details, code, message } };
}

function retry(
  code: string,
  message: string,
  details: Record<string, unknown> = {},
): DeliveryOutcome {
  return { kind: 'retry', error: { ...details, code, message } };
}

/** The start of an error response, for the job's error; the rest is dropped unread. */
async function bodyStart(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= MAX_BODY_BYTES) break;
    }
  } catch {
    // A body that breaks off still leaves the status to report.
  } finally {
    body.destroy();
  }
  return Buffer.concat(chunks).toString('utf8').slice(0, MAX_BODY_CHARS);
}

function parseHttpUrl(raw: string): URL | undefined {
  try {
    const url = new URL(raw);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : undefined;
  } catch {
    return undefined;
  }
}

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function first(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
