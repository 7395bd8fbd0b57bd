import { AppError } from '../domain/errors.js';

/**
 * RFC 6750's challenge: every 401 says, in `WWW-Authenticate`, that the API wants a bearer
 * token, and when a token came but was refused, why (`error` and `error_description`).
 */

export const BEARER_REALM = 'pie';

/**
 * RFC 6750 section 3.1's codes that fit a 401: `invalid_request` for an Authorization header
 * that names the Bearer scheme but does not carry one token; `invalid_token` for a token that
 * was read but refused (malformed, expired, wrongly signed...). A request with no bearer
 * credentials at all gets no code.
 */
export type BearerErrorCode = 'invalid_request' | 'invalid_token';

/** A 401 whose challenge carries an RFC 6750 error code. */
export class BearerAuthError extends AppError {
  constructor(
    message: string,
    readonly code?: BearerErrorCode,
  ) {
    super(401, message);
  }
}

/** The `WWW-Authenticate` value for a 401 answered with `error`. */
export function bearerChallenge(error: unknown): string {
  const params = [`realm="${BEARER_REALM}"`];
  if (error instanceof BearerAuthError && error.code !== undefined) {
    params.push(`error="${error.code}"`, `error_description="${descriptionText(error.message)}"`);
  }
  return `Bearer ${params.join(', ')}`;
}

// error_description allows printable ASCII but `"` and `\` (RFC 6750 section 3), so the
// message is folded into that: quotes become apostrophes, anything else outside it a '?'.
function descriptionText(message: string): string {
  return message
    .replace(/"/g, "'")
    .replace(/\\/g, '/')
    .replace(/[^\x20-\x7e]/g, '?')
    .slice(0, 300);
}
