import type { Queryable } from '../db/database.js';
import { countOpenBatches } from './batches.repository.js';
import { inFlight } from './indexed-job-sets.js';

/** What waits in the queues: a gauge's worth, read when metrics are scraped. */
export interface QueueDepth {
  /** Queued jobs by priority and queue (push: http, command, truefoundry; pull: workers). */
  queued: { priority: number; queue: 'push' | 'pull'; jobs: number }[];
  /** Queued jobs whose model version, or whose client, is at its `max_in_flight`. */
  heldBack: { version: number; client: number };
  /** Batches not yet finished. */
  openBatches: number;
}

// Each count reads one of the queue's partial indexes (push or pull ready, or a lane tail), so
// it costs as much as the jobs queued, never the finished ones kept.
const QUEUED = `
  select priority, 'push' as queue, count(*)::int as jobs from jobs
  where status = 'queued' and handler_type <> 'worker' group by priority
  union all
  select priority, 'pull', count(*)::int from jobs
  where status = 'queued' and handler_type = 'worker' group by priority`;

const HELD_BACK = `
  with full_versions as (
    select v.model_id, v.model_version from model_versions v
    where v.max_in_flight is not null and v.max_in_flight <= (
      select count(*) from jobs f where f.model_id = v.model_id
        and f.model_version = v.model_version and ${inFlight('f')})
  ), full_clients as (
    select c.client_id from clients c
    where c.max_in_flight is not null and c.max_in_flight <= (
      select count(*) from jobs f where f.client_id = c.client_id and ${inFlight('f')})
  )
  select ${heldIn('full_versions', 'model_id, model_version')} as version,
         ${heldIn('full_clients', 'client_id')} as client`;

/** Queued jobs under the limits `full` lists, push and pull counted apart (one index each). */
function heldIn(full: string, key: string): string {
  const count = (queue: string) =>
    `(select count(*) from jobs j join ${full} using (${key})
      where j.status = 'queued' and j.handler_type ${queue})`;
  return `(${count("<> 'worker'")} + ${count("= 'worker'")})::int`;
}

export async function readQueueDepth(q: Queryable): Promise<QueueDepth> {
  const queued = await q.query<QueueDepth['queued'][number]>(QUEUED);
  const held = await q.query<QueueDepth['heldBack']>(HELD_BACK);
  return {
    queued: queued.rows,
    heldBack: held.rows[0] ?? { version: 0, client: 0 },
    openBatches: await countOpenBatches(q),
  };
}
