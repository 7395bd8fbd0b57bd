import type { Queryable } from '../db/database.js';
import type { TriggeredEvent } from '../domain/triggered-event.js';
import type { EmitJobEvent } from '../lifecycle/job-events.js';
import * as batches from '../repositories/batches.repository.js';
import { findBatchSubscriptions } from '../repositories/subscriptions.repository.js';
import type { AppContext } from './context.js';
import { startSubscriptionJob } from './subscription-job.js';

/**
 * Fan-in. A batch is finished once none of its jobs is open: then, in one transaction, it is
 * marked finished and each matching `batch_complete` subscription starts one job, whose
 * trigger carries the batch's counts and failed services. Marking is a conditional update of
 * the batch's row (`finished_at is null`), so it succeeds once per batch, whichever process
 * and however many callers ask at the same moment; a transaction that fails leaves the batch
 * open for the next try.
 *
 * Who asks: a completion of one of the batch's jobs, at once after it commits (two last
 * completions committing together each ask after both committed, so one of them finds the
 * batch done); and every process's `BatchFinisherService` each second, for batches whose
 * last job ended another way (cancelled, timed out, failed by dispatch).
 */
export async function finishBatch(
  ctx: AppContext,
  clientId: string,
  batchId: string,
): Promise<batches.Batch | undefined> {
  // Most asks come from completions that leave jobs open: one read answers them.
  if (!(await batches.isBatchDone(ctx.db, clientId, batchId))) return undefined;
  const finished = await ctx.events.afterCommit((emit) =>
    ctx.db.transaction(async (tx) => {
      const batch = await batches.finishBatchIfDone(tx, clientId, batchId);
      if (batch === undefined) return undefined;
      const events = await fireBatchSubscriptions(tx, emit, batch);
      if (events.length > 0) await batches.recordBatchEvents(tx, clientId, batchId, events);
      return { ...batch, triggered_events: events };
    }),
  );
  if (finished !== undefined) {
    ctx.metrics.batchesFinished.inc({ kind: finished.kind });
    for (const event of finished.triggered_events) {
      ctx.metrics.batchSubscriptionsFired.inc({ outcome: 'error' in event ? 'failed' : 'started' });
    }
  }
  return finished;
}

/** Finishes up to `limit` batches whose jobs are all final; answers how many it finished. */
export async function finishDoneBatches(ctx: AppContext, limit: number): Promise<number> {
  let finished = 0;
  for (const batch of await batches.findDoneOpenBatches(ctx.db, limit)) {
    if ((await finishBatch(ctx, batch.client_id, batch.batch_id)) !== undefined) finished += 1;
  }
  return finished;
}

async function fireBatchSubscriptions(
  q: Queryable,
  emit: EmitJobEvent,
  batch: batches.Batch,
): Promise<TriggeredEvent[]> {
  const subscriptions = await findBatchSubscriptions(q, batch);
  if (subscriptions.length === 0) return [];
  const failed = await batches.failedServices(q, batch.client_id, batch.batch_id);
  const events: TriggeredEvent[] = [];
  for (const subscription of subscriptions) {
    const id = subscription.subscription_id;
    const trigger = {
      subscription_id: id,
      batch_id: batch.batch_id,
      counts: batch.counts,
      failed_services: failed,
    };
    events.push(await startSubscriptionJob(q, emit, subscription, { trigger, lineage: [id] }));
  }
  return events;
}
