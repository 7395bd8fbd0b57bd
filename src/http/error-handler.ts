import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { isDatabaseUnavailable } from '../db/connection-errors.js';
import { sqlState } from '../db/database.js';
import { AppError } from '../domain/errors.js';
import { bearerChallenge } from './bearer-challenge.js';

/**
 * Maps every error to `{success: false, message}`: PIE's own errors keep their status,
 * framework client errors (validation, bad JSON, body too large) keep theirs, a database that
 * cannot be reached is a 503 to retry, and everything else becomes a logged 500 that names the
 * request id and hides the cause. Every 401 carries its `WWW-Authenticate` challenge.
 */
export function handleError(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  // RFC 6750: a 401, whatever raised it, tells the caller to send a bearer token.
  if ((error instanceof AppError ? error.status : error.statusCode) === 401) {
    reply.header('www-authenticate', bearerChallenge(error));
  }
  if (error instanceof AppError) {
    if (error.retryAfterS !== undefined) reply.header('retry-after', String(error.retryAfterS));
    return reply
      .status(error.status)
      .send({ success: false, message: error.message, ...error.details });
  }
  if (error.validation) {
    return reply.status(400).send({ success: false, message: `invalid request: ${error.message}` });
  }
  if (isUnstorableText(error)) {
    return reply
      .status(400)
      .send({ success: false, message: 'request has text that cannot be stored' });
  }
  const status = error.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    return reply.status(status).send({ success: false, message: clientErrorMessage(error) });
  }
  if (isDatabaseUnavailable(error)) {
    // Not a fault of PIE or of the request: the pool reconnects once the server is back.
    request.log.warn({ err: error.message }, 'database unavailable');
    return reply
      .status(503)
      .header('retry-after', String(DATABASE_RETRY_AFTER_S))
      .send({ success: false, message: DATABASE_UNAVAILABLE });
  }
  request.log.error({ err: error }, 'unexpected error');
  return reply.status(500).send({
    success: false,
    message: `internal error; quote request id ${request.id} when reporting it`,
    request_id: request.id,
  });
}

export const DATABASE_UNAVAILABLE = 'database unavailable; retry shortly';
const DATABASE_RETRY_AFTER_S = 1;

function clientErrorMessage(error: FastifyError): string {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'request body is too large';
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'unsupported content type; send application/json';
    default:
      return error.message;
  }
}

// Safety net for text PostgreSQL refuses (a NUL byte, an invalid code point) that slipped past
// body parsing, say in a query string: bad input is a 400, never a 500.
function isUnstorableText(error: unknown): boolean {
  const state = sqlState(error);
  return state === '22P05' || state === '22021';
}

export function handleNotFound(request: FastifyRequest, reply: FastifyReply) {
  return reply
    .status(404)
    .send({ success: false, message: `no route ${request.method} ${request.url.split('?')[0]}` });
}
