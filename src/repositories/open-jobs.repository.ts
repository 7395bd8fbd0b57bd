import type { Queryable } from '../db/database.js';
import { open } from './indexed-job-sets.js';

/**
 * Open (queued, dispatched or running) jobs per client, for the open-jobs quota. Only clients
 * with open jobs appear. The open statuses have a partial index (`jobs_open_deadlines`), so
 * this reads open jobs only, however many finished ones the table holds.
 */
export async function countOpenJobsByClient(q: Queryable): Promise<Map<string, number>> {
  const { rows } = await q.query<{ client_id: string; open: number }>(
    `select client_id, count(*)::integer as open from jobs
     where ${open()}
     group by client_id`,
  );
  return new Map(rows.map((row) => [row.client_id, row.open]));
}
