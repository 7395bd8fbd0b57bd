import type { Queryable } from '../db/database.js';
import { json } from './rows.js';

/**
 * The jobs of debounced subscriptions (migration 000013): the first matching completion starts
 * one, due `debounce_s` later, and completions until then join it.
 */

/**
 * The subscription's latest job, share-locked, if it still gathers completions: queued and not
 * yet due (by the clock now, not the transaction's start). The share lock lets any number of
 * completions join at once while keeping a claim (`for update skip locked`) from taking the
 * job until they commit. Its status is read, not filtered on, so that no index of one status
 * is taken for this lookup.
 */
export async function findGatheringJob(
  q: Queryable,
  clientId: string,
  subscriptionId: string,
): Promise<string | undefined> {
  const { rows } = await q.query<{ job_id: string; gathering: boolean }>(
    `select job_id, status = 'queued' and run_at > clock_timestamp() as gathering from jobs
     where client_id = $1 and debounce_subscription_id = $2::uuid
     order by run_at desc limit 1
     for share`,
    [clientId, subscriptionId],
  );
  const row = rows[0];
  return row?.gathering === true ? row.job_id : undefined;
}

/**
 * Locks a subscription's row for the rest of the transaction, before starting the job it
 * gathers into: completions that found no gathering job take turns here, so one starts it and
 * the others, looking again after their turn comes, find it and join.
 */
export async function lockSubscriptionForFiring(
  q: Queryable,
  clientId: string,
  subscriptionId: string,
): Promise<void> {
  await q.query(
    `select 1 from subscriptions where client_id = $1 and subscription_id = $2::uuid
     for no key update`,
    [clientId, subscriptionId],
  );
}

/** Makes a just-started job gather the subscription's completions for `debounceS` seconds. */
export async function holdForDebounce(
  q: Queryable,
  jobId: string,
  subscriptionId: string,
  debounceS: number,
): Promise<void> {
  await q.query(
    `update jobs set run_at = now() + make_interval(secs => $3),
       debounce_subscription_id = $2::uuid
     where job_id = $1`,
    [jobId, subscriptionId, debounceS],
  );
}

/** Adds a completion to the job gathering them (its trigger shows it from then on). */
export async function joinGatheringJob(
  q: Queryable,
  gathering: { client_id: string; job_id: string },
  completedJobId: string,
  output: unknown,
): Promise<void> {
  await q.query(
    `insert into debounce_joins (client_id, job_id, completed_job_id, output)
     values ($1, $2, $3, $4::jsonb)`,
    [gathering.client_id, gathering.job_id, completedJobId, output === null ? null : json(output)],
  );
}
