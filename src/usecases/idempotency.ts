import type { Caller } from '../auth/caller.js';
import type { Queryable } from '../db/database.js';
import { conflict, unprocessable } from '../domain/errors.js';
import {
  claimIdempotencyKey,
  releaseIdempotencyKey,
  saveIdempotentResponse,
  type IdempotencyScope,
} from '../repositories/idempotency.repository.js';
import type { AppContext } from './context.js';

/** A use case's answer: the status it stands for and the body to send. */
export interface Answer<T, Status extends number = number> {
  statusCode: Status;
  body: T;
}

/** An answer that may be the stored answer of an earlier request with the same key. */
export type IdempotentAnswer<T> = Answer<T> & { replayed: boolean };

/** A request's Idempotency-Key, and a hash of the request (method, path, body) it came with. */
export interface IdempotencyKey {
  key: string;
  requestHash: string;
}

/**
 * Runs `work` under an Idempotency-Key. The key is claimed in its own statement, so a
 * concurrent retry sees it in flight (409); the work and its stored answer then commit in one
 * transaction, so an answer is on record exactly when its jobs exist. A request that fails
 * frees its key. The same key with the same request within 24 hours replays the first answer
 * and runs nothing; with a different request it is a 422. Without a key, `work` simply runs.
 */
export async function answerIdempotently<T>(
  ctx: AppContext,
  caller: Caller,
  clientId: string,
  idempotency: IdempotencyKey | undefined,
  work: (q: Queryable) => Promise<Answer<T>>,
): Promise<IdempotentAnswer<T>> {
  if (idempotency === undefined) return { ...(await work(ctx.db)), replayed: false };
  const { key, requestHash } = idempotency;
  const scope: IdempotencyScope = { clientId, caller: caller.subject, key };
  const claim = await claimIdempotencyKey(ctx.db, scope, requestHash);
  switch (claim.kind) {
    case 'replay':
      return { statusCode: claim.statusCode, body: claim.body as T, replayed: true };
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
    return { ...answer, replayed: false };
  } catch (error) {
    await releaseIdempotencyKey(ctx.db, scope).catch(() => undefined);
    throw error;
  }
}
