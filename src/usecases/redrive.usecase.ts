import { grants, type Caller } from '../auth/caller.js';
import type { Queryable } from '../db/database.js';
import { conflict, forbidden, notFound, unprocessable } from '../domain/errors.js';
import { cancelSelected } from '../lifecycle/finish.js';
import { wakeKey } from '../lifecycle/job-wakeups.js';
import type { JobSelection } from '../repositories/job-selection.js';
import { findJob, type Job } from '../repositories/jobs.repository.js';
import { insertRetries, type RetriedJob } from '../repositories/redrive.repository.js';
import type { AppContext } from './context.js';
import { answerIdempotently, type IdempotencyKey, type IdempotentAnswer } from './idempotency.js';
import { withinOpenJobQuota } from './open-job-admission.js';
import { requireDomain } from './tenant-lookup.js';
import { currentTraceparent } from '../observability/tracing.js';

export interface DomainJobs {
  clientId: string;
  domainId: string;
  idempotency?: IdempotencyKey | undefined;
}

export interface BulkAnswer {
  count: number;
  job_ids: string[];
}

/**
 * Redrive: final jobs never change, so a `failure` or `cancelled` job is run again as a new job
 * (`retry_of` names it). One job by id, or every match of a selection, in one transaction,
 * under the open-jobs quota and the request's Idempotency-Key.
 */
export function retryJob(
  ctx: AppContext,
  caller: Caller,
  input: DomainJobs & { jobId: string },
): Promise<IdempotentAnswer<{ job_id: string }>> {
  const { clientId, domainId, jobId } = input;
  return startRetries(ctx, caller, input, { jobId, limit: 1 }, async (retried, q) => {
    if (retried[0] !== undefined) return { job_id: retried[0].job_id };
    const job = await findJob(q, clientId, domainId, jobId);
    if (job === undefined) throw notFound(`job "${jobId}" not found in domain "${domainId}"`);
    if (!grants(caller.models, job.model_id)) {
      throw forbidden(`this token may not act on model "${job.model_id}"`);
    }
    throw conflict(
      `job "${jobId}" is ${job.status}; only failure or cancelled jobs can be retried`,
    );
  });
}

/** Retries every `failure` or `cancelled` job the selection picks: 202 `{count, job_ids}`. */
export function retryJobs(
  ctx: AppContext,
  caller: Caller,
  input: DomainJobs & { selection: JobSelection },
): Promise<IdempotentAnswer<BulkAnswer>> {
  return startRetries(ctx, caller, input, input.selection, async (retried) => ({
    count: retried.length,
    job_ids: retried.map((job) => job.job_id),
  }));
}

function startRetries<T>(
  ctx: AppContext,
  caller: Caller,
  input: DomainJobs,
  selection: JobSelection,
  answer: (retried: RetriedJob[], q: Queryable) => Promise<T>,
): Promise<IdempotentAnswer<T>> {
  const { clientId, domainId } = input;
  return withinOpenJobQuota(ctx, clientId, () =>
    ctx.events.afterCommit(async (emit) => {
      let started = 0;
      const result = await answerIdempotently(
        ctx,
        caller,
        clientId,
        input.idempotency,
        async (q) => {
          const domain = await requireDomain(q, clientId, domainId);
          if (domain.status !== 'active') {
            throw unprocessable(
              `domain "${domainId}" is inactive; jobs run only in active domains`,
            );
          }
          const retried = await insertRetries(
            q,
            clientId,
            domainId,
            selection,
            caller.models,
            currentTraceparent(),
          );
          for (const job of retried) {
            emit({
              type: 'queued',
              jobType: job.job_type,
              count: 1,
              wake: wakeKey(job),
              redrive: true,
            });
          }
          const body = await answer(retried, q);
          started = retried.length;
          return { statusCode: 202, body };
        },
      );
      return { result, started: result.replayed ? 0 : started };
    }),
  );
}

/** Cancels every open job the selection picks: 200 `{count, job_ids}`. */
export function cancelJobs(
  ctx: AppContext,
  caller: Caller,
  input: DomainJobs & { selection: JobSelection },
): Promise<IdempotentAnswer<BulkAnswer>> {
  const { clientId, domainId, selection } = input;
  return ctx.events.afterCommit((emit) =>
    answerIdempotently(ctx, caller, clientId, input.idempotency, async (q) => {
      await requireDomain(q, clientId, domainId);
      const cancelled: Job[] = await cancelSelected(
        q,
        emit,
        clientId,
        domainId,
        selection,
        caller.models,
      );
      return {
        statusCode: 200,
        body: { count: cancelled.length, job_ids: cancelled.map((job) => job.job_id) },
      };
    }),
  );
}
