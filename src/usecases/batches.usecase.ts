import type { Caller } from '../auth/caller.js';
import type { Queryable } from '../db/database.js';
import { AppError, conflict, notFound, unprocessable } from '../domain/errors.js';
import {
  type PageRequest,
  type PageResult,
  requireCastableCursor,
  toPage,
} from '../domain/paging.js';
import { wakeKey } from '../lifecycle/job-wakeups.js';
import * as batches from '../repositories/batches.repository.js';
import {
  insertBatchIfTargetsCurrent,
  type GuardedJob,
} from '../repositories/job-batch-insert.repository.js';
import { loadJobTargets } from '../repositories/job-targets.repository.js';
import type { AppContext } from './context.js';
import { answerIdempotently, type IdempotencyKey, type IdempotentAnswer } from './idempotency.js';
import { withinOpenJobQuota } from './open-job-admission.js';
import { planJob } from './start-job.js';
import { requireDomain } from './tenant-lookup.js';

export interface BatchRef {
  clientId: string;
  domainId: string;
  batchId: string;
}

export async function getBatch(
  ctx: AppContext,
  _caller: Caller,
  input: BatchRef,
): Promise<batches.Batch> {
  const { clientId, domainId, batchId } = input;
  const batch = await batches.findBatch(ctx.db, clientId, domainId, batchId);
  if (batch !== undefined) return batch;
  await requireDomain(ctx.db, clientId, domainId);
  throw notFound(`batch "${batchId}" not found in domain "${domainId}"`);
}

/** A domain's batches, newest first, a page at a time. */
export async function listBatches(
  ctx: AppContext,
  _caller: Caller,
  input: { clientId: string; domainId: string; kind?: batches.BatchKind; page: PageRequest },
): Promise<PageResult<batches.Batch>> {
  const { clientId, domainId, page } = input;
  requireCastableCursor(page.after, ['time', 'uuid']);
  await requireDomain(ctx.db, clientId, domainId);
  const rows = await batches.listBatches(ctx.db.reads, clientId, domainId, input.kind, page);
  return toPage(rows, page.limit, (batch) => [batch.created_at, batch.batch_id]);
}

export interface StartBatchInput {
  clientId: string;
  domainId: string;
  assignmentKey: string;
  jobType: string;
  priority?: number | undefined;
  jobs: { service_id: string; input?: Record<string, unknown> | undefined }[];
  idempotency?: IdempotencyKey | undefined;
}

export interface BatchStarted {
  batch_id: string;
  job_ids: string[];
}

/**
 * `POST .../jobs/batch`: one job per entry through the assignment key, in one statement, all or
 * none. Every entry is checked as a single run-job would be; if any service cannot run, the
 * answer is one 422 listing each of them, and no job starts. Under the open-jobs quota and the
 * request's Idempotency-Key, like every route that starts jobs.
 */
export function startBatch(
  ctx: AppContext,
  caller: Caller,
  input: StartBatchInput,
): Promise<IdempotentAnswer<BatchStarted>> {
  return withinOpenJobQuota(ctx, input.clientId, () =>
    ctx.events.afterCommit(async (emit) => {
      let started = 0;
      const answer = await answerIdempotently(
        ctx,
        caller,
        input.clientId,
        input.idempotency,
        async (q) => {
          const { body, jobs } = await insertBatch(q, caller, input);
          started = jobs.length;
          const byWake = new Map<string, number>();
          for (const { job } of jobs) {
            const wake = wakeKey({
              model_id: job.modelId,
              model_version: job.modelVersion,
              handler_type: job.handlerType,
            });
            byWake.set(wake, (byWake.get(wake) ?? 0) + 1);
          }
          for (const [wake, count] of byWake) {
            emit({ type: 'queued', jobType: input.jobType, count, wake });
          }
          return { statusCode: 202, body };
        },
      );
      return { result: answer, started: answer.replayed ? 0 : started };
    }),
  );
}

// A service or assignment that changes between the read and the insert makes the insert
// refuse the whole batch; reading again gives the answer the new rows call for.
const ATTEMPTS = 3;

async function insertBatch(
  q: Queryable,
  caller: Caller,
  input: StartBatchInput,
): Promise<{ body: BatchStarted; jobs: GuardedJob[] }> {
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    const jobs = await planBatch(q, caller, input);
    const inserted = await insertBatchIfTargetsCurrent(q, jobs, {
      kind: 'bulk',
      key: input.assignmentKey,
    });
    if (inserted !== undefined) {
      return { body: { batch_id: inserted.batchId, job_ids: inserted.jobIds }, jobs };
    }
  }
  throw conflict('services or assignments kept changing while the batch started; retry');
}

/** Each entry's job, checked as a single run-job is; a 422 listing every service that fails. */
async function planBatch(
  q: Queryable,
  caller: Caller,
  input: StartBatchInput,
): Promise<GuardedJob[]> {
  const { clientId, domainId, assignmentKey: key } = input;
  const serviceIds = input.jobs.map((job) => job.service_id);
  const targets = await loadJobTargets(q, clientId, domainId, serviceIds, key);
  const first = targets.get(serviceIds[0]!)!;
  if (!first.client_exists) throw notFound(`client "${clientId}" not found`);
  if (first.domain_status === null) {
    throw notFound(`domain "${domainId}" not found in client "${clientId}"`);
  }
  const planned: GuardedJob[] = [];
  const problems: { service_id: string; message: string }[] = [];
  for (const entry of input.jobs) {
    const target = targets.get(entry.service_id)!;
    try {
      const job = planJob(target, {
        clientId,
        domainId,
        serviceId: entry.service_id,
        key,
        jobType: input.jobType,
        input: entry.input ?? {},
        subscribe: false,
        trigger: null,
        lineage: [],
        models: caller.models,
        priority: input.priority,
      });
      const expect = { serviceStamp: target.service_stamp, versionStamp: target.version_stamp! };
      planned.push({ job, expect });
    } catch (error) {
      // A token that may not use a service's model is refused outright, as a single run is.
      if (!(error instanceof AppError) || error.status === 403) throw error;
      problems.push({ service_id: entry.service_id, message: error.message });
    }
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 10).map((p) => p.message);
    const more = problems.length > shown.length ? `; and ${problems.length - 10} more` : '';
    throw unprocessable(
      `${problems.length} of ${input.jobs.length} jobs cannot start, so none did: ` +
        `${shown.join('; ')}${more}`,
      { services: problems },
    );
  }
  return planned;
}
