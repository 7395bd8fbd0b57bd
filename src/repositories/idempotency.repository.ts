import type { Queryable } from '../db/database.js';
import { json } from './rows.js';

export interface IdempotencyScope {
  clientId: string;
  caller: string;
  key: string;
}

export type IdempotencyClaim =
  | { kind: 'owned' }
  | { kind: 'replay'; statusCode: number; body: unknown }
  | { kind: 'mismatch' }
  | { kind: 'in-flight' };

/**
 * Claims a key for this request, in one statement. A record older than 24 hours is expired and
 * taken over; so is one left in flight for 5 minutes (its request died before committing, so
 * it started nothing). Otherwise the existing record decides: the same request replays its
 * answer, a different one is a mismatch, and one still running is in flight.
 */
export async function claimIdempotencyKey(
  q: Queryable,
  scope: IdempotencyScope,
  requestHash: string,
): Promise<IdempotencyClaim> {
  const { rows } = await q.query<{
    owned: boolean | null;
    request_hash: string | null;
    status_code: number | null;
    response: unknown;
  }>(
    `with claimed as (
       insert into idempotency_keys (client_id, caller, key, request_hash)
       values ($1, $2, $3, $4)
       on conflict (client_id, caller, key) do update
         set request_hash = excluded.request_hash, status_code = null, response = null,
             created_at = now()
         where idempotency_keys.created_at < now() - interval '24 hours'
            or (idempotency_keys.status_code is null
                and idempotency_keys.created_at < now() - interval '5 minutes')
       returning true as owned
     )
     select (select owned from claimed) as owned, k.request_hash, k.status_code, k.response
     from (select 1) as one
     left join idempotency_keys k on k.client_id = $1 and k.caller = $2 and k.key = $3`,
    [scope.clientId, scope.caller, scope.key, requestHash],
  );
  const row = rows[0]!;
  if (row.owned === true) return { kind: 'owned' };
  // Not visible yet: another request claimed it while this statement ran.
  if (row.request_hash === null) return { kind: 'in-flight' };
  if (row.request_hash !== requestHash) return { kind: 'mismatch' };
  if (row.status_code === null) return { kind: 'in-flight' };
  return { kind: 'replay', statusCode: row.status_code, body: row.response };
}

/** Stores the answer, in the transaction that did the work, so both commit or neither. */
export async function saveIdempotentResponse(
  q: Queryable,
  scope: IdempotencyScope,
  statusCode: number,
  body: unknown,
): Promise<void> {
  await q.query(
    `update idempotency_keys set status_code = $4, response = $5::jsonb
     where client_id = $1 and caller = $2 and key = $3`,
    [scope.clientId, scope.caller, scope.key, statusCode, json(body)],
  );
}

/** Frees a key whose request failed, so a retry with the same key may run. */
export async function releaseIdempotencyKey(q: Queryable, scope: IdempotencyScope): Promise<void> {
  await q.query(
    `delete from idempotency_keys
     where client_id = $1 and caller = $2 and key = $3 and status_code is null`,
    [scope.clientId, scope.caller, scope.key],
  );
}
