import { createHmac, timingSafeEqual } from 'node:crypto';
import { webhookSecretKey, WEBHOOK_SECRET_PREFIX } from '../../domain/webhook-secret.js';

/**
 * Standard Webhooks signatures (https://www.standardwebhooks.com): HMAC-SHA256 over
 * `${id}.${timestamp}.${body}`, keyed with the base64 secret after its optional `whsec_` prefix.
 * Matching the specification lets a receiver verify PIE's deliveries with any of its libraries.
 */

export type WebhookHeaders = Headers | Record<string, string | string[] | undefined>;

/** The `webhook-signature` header value: `v1,<base64 signature>`. */
export function signWebhook(
  secret: string,
  id: string,
  timestampSeconds: number,
  body: string,
): string {
  return `v1,${hmac(secret, id, String(timestampSeconds), body).toString('base64')}`;
}

/**
 * Whether the headers carry a valid signature of the body, made within `toleranceSeconds` of now
 * (the window stops a captured delivery from being replayed later).
 */
export function verifyWebhook(
  secret: string,
  headers: WebhookHeaders,
  body: string,
  toleranceSeconds = 300,
  nowSeconds = Math.floor(Date.now() / 1000),
): boolean {
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (id === undefined || timestamp === undefined || signatures === undefined) return false;
  if (!/^\d+$/.test(timestamp) || Math.abs(nowSeconds - Number(timestamp)) > toleranceSeconds) {
    return false;
  }
  const expected = hmac(secret, id, timestamp, body);
  // A sender rotating its secret may send several space-separated signatures; any one will do.
  return signatures.split(' ').some((entry) => {
    const [version, signature] = entry.split(',', 2);
    if (version !== 'v1' || signature === undefined) return false;
    const given = Buffer.from(signature, 'base64');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

function hmac(secret: string, id: string, timestamp: string, body: string): Buffer {
  return createHmac('sha256', signingKey(secret)).update(`${id}.${timestamp}.${body}`).digest();
}

/**
 * The key a secret stands for, decoded exactly as the standard's libraries decode it. A secret
 * stored before PIE checked the rule (say `my-shared-secret`) is left as it was, and keeps the
 * key PIE always gave it: Node's lenient base64 reading of its text, so that its receivers
 * see no change until it is replaced.
 */
function signingKey(secret: string): Buffer {
  return (
    webhookSecretKey(secret) ??
    Buffer.from(
      secret.startsWith(WEBHOOK_SECRET_PREFIX)
        ? secret.slice(WEBHOOK_SECRET_PREFIX.length)
        : secret,
      'base64',
    )
  );
}

function header(headers: WebhookHeaders, name: string): string | undefined {
  const value = headers instanceof Headers ? headers.get(name) : headers[name];
  const first = Array.isArray(value) ? value[0] : value;
  return first === null || first === '' ? undefined : first;
}
