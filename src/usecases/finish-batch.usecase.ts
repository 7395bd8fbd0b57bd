import type { Queryable } from '../db/database.js';
import { AppError } from '../domain/errors.js';
import type { TriggeredEvent } from '../domain/triggered-event.js';
import type { EmitJobEvent } from '../lifecycle/job-events.js';
import * as batches from '../repositories/batches.repository.js';
import { findBatchSubscriptions } from '../repositories/subscriptions.repository.js';
import type { AppContext } from './context.js';
import { startJob } from './start-job.js';

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
    try {
      const jobType = subscription.action.job_type;
      const started = await startJob(q, {
        clientId: batch.client_id,
        domainId: batch.domain_id,
        serviceId: subscription.action.service_id,
        key: subscription.action.assignment_key,
        jobType,
        input: subscription.input,
        subscribe: false,
        trigger: {
          subscription_id: id,
          batch_id: batch.batch_id,
          counts: batch.counts,
          failed_services: failed,
        },
        lineage: [id],
        models: '*',
        priority: subscription.action.priority ?? undefined,
      });
      events.push({ subscription_id: id, job_id: started.job_id });
      emit({ type: 'queued', jobType, count: 1, wake: started.wake });
    } catch (error) {
      // As for a completion's subscriptions: PIE's own refusals are this subscription's
      // outcome; a database fault aborts the transaction and the batch stays open.
      if (!(error instanceof AppError)) throw error;
      events.push({ subscription_id: id, error: error.message });
    }
  }
  return events;
}
