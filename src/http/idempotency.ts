import crypto from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Queryable } from '../db/database.js';
import {
  claimIdempotencyKey,
  releaseIdempotencyKey,
  saveIdempotentResponse,
  type IdempotencyScope,
} from '../repositories/idempotency.repository.js';
import type { AppContext } from '../usecases/context.js';
import { conflict, unprocessable } from '../domain/errors.js';

export const IdempotencyHeaders = Type.Object({
  'idempotency-key': Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: 255,
      pattern: '^[\\x21-\\x7E]+$',
      description:
        'Makes the request safe to retry: the same key from the same caller with the same ' +
        'request within 24 hours returns the first answer and starts nothing.',
    }),
  ),
});

export interface Answer<T, Status extends number = number> {
  statusCode: Status;
  body: T;
}

/**
 * Runs `work` under the request's Idempotency-Key (SPEC section 4). The key is claimed in its
 * own statement, so a concurrent retry sees it in flight (409); the work and its stored answer
 * then commit in one transaction, so an answer is on record exactly when its jobs exist. A
 * request that fails frees its key. Without the header, `work` simply runs.
 */
export async function answerIdempotently<T>(
  ctx: AppContext,
  request: FastifyRequest,
  reply: FastifyReply,
  clientId: string,
  work: (q: Queryable) => Promise<Answer<T>>,
) {
  const key = request.headers['idempotency-key'];
  if (typeof key !== 'string') {
    const answer = await work(ctx.db);
    return reply.status(answer.statusCode).send(answer.body);
  }
  const scope: IdempotencyScope = { clientId, caller: request.caller.subject, key };
  const claim = await claimIdempotencyKey(ctx.db, scope, requestHash(request));
  switch (claim.kind) {
    case 'replay':
      return reply.header('idempotent-replayed', 'true').status(claim.statusCode).send(claim.body);
    case 'mismatch':
      throw unprocessable(
        `Idempotency-Key "${key}" was already used for a different request; use a new key`,
      );
    case 'in-flight':
      throw conflict(`a request with Idempotency-Key "${key}" is still in progress; retry later`);
    case 'owned':
      break;
  }
  try {
    const answer = await ctx.db.transaction(async (tx) => {
      const result = await work(tx);
      await saveIdempotentResponse(tx, scope, result.statusCode, result.body);
      return result;
    });
    return reply.status(answer.statusCode).send(answer.body);
  } catch (error) {
    await releaseIdempotencyKey(ctx.db, scope).catch(() => undefined);
    throw error;
  }
}

function requestHash(request: FastifyRequest): string {
  const text = `${request.method} ${request.url}\n${canonicalJson(request.body)}`;
  return crypto.createHash('sha256').update(text).digest('hex');
}

/** JSON with object keys sorted, so the same body in another key order hashes the same. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, item]) => `${JSON.stringify(k)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}
