import { randomBytes } from 'node:crypto';

/**
 * An http handler's Standard Webhooks signing secret: `whsec_` and the standard base64
 * (RFC 4648 section 4: `A-Z a-z 0-9 + /`, padded with `=`) of a 24 to 64 byte key.
 *
 * The official libraries decode the part after `whsec_` each with its language's base64
 * decoder, and those differ at the edges: some tolerate missing padding or skip characters
 * they do not know, others refuse them, or refuse bits set after the last byte. Only the
 * canonical padded form reads as the same key in all of them, so that is the one PIE accepts:
 * a receiver then verifies PIE's deliveries with whichever library it uses.
 */

export const WEBHOOK_SECRET_PREFIX = 'whsec_';
export const WEBHOOK_SECRET_MIN_BYTES = 24;
export const WEBHOOK_SECRET_MAX_BYTES = 64;
/** The key length of a secret PIE generates. */
export const GENERATED_SECRET_BYTES = 32;

export const WEBHOOK_SECRET_RULE =
  `handler.secret must be "${WEBHOOK_SECRET_PREFIX}" followed by the standard base64 ` +
  '(A-Z a-z 0-9 + /, padded with =) of ' +
  `${WEBHOOK_SECRET_MIN_BYTES} to ${WEBHOOK_SECRET_MAX_BYTES} bytes; ` +
  'omit it and PIE generates one';

/** Why `secret` breaks the rule, naming the rule; undefined when it follows it. */
export function webhookSecretProblem(secret: string): string | undefined {
  const why = ruleBreach(secret);
  return why === undefined ? undefined : `${WEBHOOK_SECRET_RULE} (this one ${why})`;
}

function ruleBreach(secret: string): string | undefined {
  if (!secret.startsWith(WEBHOOK_SECRET_PREFIX)) {
    return `does not start with "${WEBHOOK_SECRET_PREFIX}"`;
  }
  const encoded = secret.slice(WEBHOOK_SECRET_PREFIX.length);
  if (encoded === '') return `has nothing after "${WEBHOOK_SECRET_PREFIX}"`;
  const key = decodeStandardBase64(encoded);
  if (key === undefined) {
    return 'is not canonical standard base64: "-" or "_" (URL-safe), missing padding or other characters';
  }
  if (key.length < WEBHOOK_SECRET_MIN_BYTES || key.length > WEBHOOK_SECRET_MAX_BYTES) {
    return `decodes to ${key.length} bytes`;
  }
  return undefined;
}

/**
 * The HMAC key of a secret that follows the rule (its `whsec_` prefix optional, as in the
 * official libraries); undefined for any other text.
 */
export function webhookSecretKey(secret: string): Buffer | undefined {
  const encoded = secret.startsWith(WEBHOOK_SECRET_PREFIX)
    ? secret.slice(WEBHOOK_SECRET_PREFIX.length)
    : secret;
  const key = decodeStandardBase64(encoded);
  if (key === undefined) return undefined;
  return key.length >= WEBHOOK_SECRET_MIN_BYTES && key.length <= WEBHOOK_SECRET_MAX_BYTES
    ? key
    : undefined;
}

/** A new secret of 32 random bytes, in the form the rule asks for. */
export function generateWebhookSecret(): string {
  return WEBHOOK_SECRET_PREFIX + randomBytes(GENERATED_SECRET_BYTES).toString('base64');
}

/**
 * The bytes of canonical, padded standard base64, else undefined. Node's decoder reads almost
 * anything (URL-safe letters, no padding, whitespace), so the text must also be exactly what
 * encoding those bytes gives back.
 */
function decodeStandardBase64(encoded: string): Buffer | undefined {
  if (encoded === '') return undefined;
  const bytes = Buffer.from(encoded, 'base64');
  return bytes.toString('base64') === encoded ? bytes : undefined;
}
