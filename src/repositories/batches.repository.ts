import type { Queryable } from '../db/database.js';
import type { PageRequest } from '../domain/paging.js';
import type { TriggeredEvent } from '../domain/triggered-event.js';
import { iso, isoOrNull, json } from './rows.js';

export type BatchKind = 'init' | 'bulk' | 'schedule';

export interface BatchCounts {
  queued: number;
  dispatched: number;
  running: number;
  success: number;
  failure: number;
  cancelled: number;
}

export interface Batch {
  batch_id: string;
  client_id: string;
  domain_id: string;
  kind: BatchKind;
  assignment_key: string;
  /** The model version every job of the batch ran on; null when they differ. */
  model_id: string | null;
  model_version: string | null;
  total: number;
  counts: BatchCounts;
  created_at: string;
  finished_at: string | null;
  /** What its batch_complete subscriptions did when it finished. */
  triggered_events: TriggeredEvent[];
}

interface BatchRow extends Omit<Batch, 'counts' | 'created_at' | 'finished_at'> {
  counts: BatchCounts;
  created_at: Date;
  finished_at: Date | null;
}

const STATUSES = ['queued', 'dispatched', 'running', 'success', 'failure', 'cancelled'] as const;

// A batch's counts are the sums over its shards (migration 000011): at most 8 rows.
const COLUMNS = `b.batch_id, b.client_id, b.domain_id, b.kind, b.assignment_key, b.model_id,
  b.model_version, b.total, b.created_at, b.finished_at, b.triggered_events,
  (select jsonb_build_object(${STATUSES.map((s) => `'${s}', coalesce(sum(c.${s}), 0)`).join(', ')})
   from batch_counts c where c.client_id = b.client_id and c.batch_id = b.batch_id) as counts`;

function toBatch(row: BatchRow): Batch {
  return {
    ...row,
    counts: {
      queued: Number(row.counts.queued),
      dispatched: Number(row.counts.dispatched),
      running: Number(row.counts.running),
      success: Number(row.counts.success),
      failure: Number(row.counts.failure),
      cancelled: Number(row.counts.cancelled),
    },
    created_at: iso(row.created_at),
    finished_at: isoOrNull(row.finished_at),
  };
}

// Batch `b` has no open job left: its shards' counts of open statuses add up to nothing.
const DONE = `not exists (
  select 1 from batch_counts c where c.client_id = b.client_id and c.batch_id = b.batch_id
  group by c.batch_id having sum(c.queued + c.dispatched + c.running) > 0)`;

/**
 * Whether every job of a group runs on one model version. Not `count(distinct (model_id,
 * model_version)) = 1`: a distinct aggregate sorts its input, which over a 1,000,000-service
 * init spilled to disk and took 1.1 s of its 38 (BENCHMARKS.md, optimisation 24). Both columns
 * are never null, so each having one value means the pairs have one value.
 */
const ONE_VERSION = `min(model_id) = max(model_id) and min(model_version) = max(model_version)`;

/**
 * SQL common table expressions that record the batch of the jobs a statement inserts: `jobs`
 * names a CTE returning each inserted job's `job_id`, `batch_id`, `model_id` and
 * `model_version`; the other arguments are SQL expressions. No jobs, no batch.
 */
export function recordBatch(b: {
  client: string;
  domain: string;
  kind: string;
  key: string;
  jobs?: string;
}): string {
  const jobs = b.jobs ?? 'inserted';
  return `batch_row as (
       insert into batches (client_id, batch_id, domain_id, kind, assignment_key, model_id,
         model_version, total)
       select ${b.client}, batch_id, ${b.domain}, ${b.kind}, ${b.key},
         case when ${ONE_VERSION} then min(model_id) end,
         case when ${ONE_VERSION} then min(model_version) end,
         count(*)
       from ${jobs} group by batch_id
     ),
     batch_shards as (
       insert into batch_counts (client_id, batch_id, shard, queued)
       select ${b.client}, batch_id, pie_batch_shard(job_id), count(*)
       from ${jobs} group by batch_id, pie_batch_shard(job_id)
     )`;
}

export async function findBatch(
  q: Queryable,
  clientId: string,
  domainId: string,
  batchId: string,
): Promise<Batch | undefined> {
  const { rows } = await q.query<BatchRow>(
    `select ${COLUMNS} from batches b
     where b.client_id = $1 and b.domain_id = $2 and b.batch_id = $3::uuid`,
    [clientId, domainId, batchId],
  );
  return rows[0] && toBatch(rows[0]);
}

/** A domain's batches, newest first; the cursor is (created_at, batch_id) of the last one. */
export async function listBatches(
  q: Queryable,
  clientId: string,
  domainId: string,
  kind: BatchKind | undefined,
  page: PageRequest,
): Promise<Batch[]> {
  const values: unknown[] = [clientId, domainId, kind ?? null, page.limit + 1];
  let after = '';
  if (page.after !== undefined) {
    values.push(page.after[0], page.after[1]);
    after = 'and (b.created_at, b.batch_id) < ($5::timestamptz, $6::uuid)';
  }
  const { rows } = await q.query<BatchRow>(
    `select ${COLUMNS} from batches b
     where b.client_id = $1 and b.domain_id = $2 and ($3::text is null or b.kind = $3) ${after}
     order by b.created_at desc, b.batch_id desc
     limit $4`,
    values,
  );
  return rows.map(toBatch);
}

/**
 * Marks the batch finished if none of its jobs is open any more, and answers it; undefined
 * when it is not done yet or was finished before. The `finished_at is null` test makes this
 * true once per batch: a second caller waits for the first's row lock, then finds it set.
 */
export async function finishBatchIfDone(
  q: Queryable,
  clientId: string,
  batchId: string,
): Promise<Batch | undefined> {
  const { rows } = await q.query<BatchRow>(
    `with finished as (
       update batches b set finished_at = now()
       where b.client_id = $1 and b.batch_id = $2::uuid and b.finished_at is null
         and ${DONE}
       returning b.*
     )
     select ${COLUMNS} from finished b`,
    [clientId, batchId],
  );
  return rows[0] && toBatch(rows[0]);
}

/** Whether the batch is open (not marked finished) though none of its jobs is: one to finish. */
export async function isBatchDone(
  q: Queryable,
  clientId: string,
  batchId: string,
): Promise<boolean> {
  const { rows } = await q.query<{ done: boolean }>(
    `select b.finished_at is null and ${DONE} as done
     from batches b where b.client_id = $1 and b.batch_id = $2::uuid`,
    [clientId, batchId],
  );
  return rows[0]?.done === true;
}

/** Batches not yet marked finished whose jobs are all final: what a finisher should finish. */
export async function findDoneOpenBatches(
  q: Queryable,
  limit: number,
): Promise<{ client_id: string; batch_id: string }[]> {
  const { rows } = await q.query<{ client_id: string; batch_id: string }>(
    `select b.client_id, b.batch_id from batches b
     where b.finished_at is null and ${DONE}
     order by b.created_at
     limit $1`,
    [limit],
  );
  return rows;
}

/** Records what the finished batch's subscriptions did. */
export async function recordBatchEvents(
  q: Queryable,
  clientId: string,
  batchId: string,
  events: TriggeredEvent[],
): Promise<void> {
  await q.query(
    'update batches set triggered_events = $3::jsonb where client_id = $1 and batch_id = $2::uuid',
    [clientId, batchId, json(events)],
  );
}

/** The services whose job in the batch failed, in order (for a batch_complete trigger). */
export async function failedServices(
  q: Queryable,
  clientId: string,
  batchId: string,
): Promise<string[]> {
  const { rows } = await q.query<{ service_id: string }>(
    `select service_id from jobs
     where client_id = $1 and batch_id = $2::uuid and status = 'failure' and service_id is not null
     order by service_id`,
    [clientId, batchId],
  );
  return rows.map((row) => row.service_id);
}

/** Batches not yet finished, for the metrics gauge. */
export async function countOpenBatches(q: Queryable): Promise<number> {
  const { rows } = await q.query<{ open: number }>(
    'select count(*)::int as open from batches where finished_at is null',
  );
  return rows[0]?.open ?? 0;
}
