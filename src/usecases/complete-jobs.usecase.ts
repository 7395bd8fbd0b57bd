import type { Caller } from '../auth/caller.js';
import { sqlState } from '../db/database.js';
import { AppError, badRequest, notFound } from '../domain/errors.js';
import { completeMany } from '../lifecycle/finish.js';
import type { Job } from '../repositories/jobs.repository.js';
import { lockJobsForCompletion } from '../repositories/job-completion.repository.js';
import { findVersion } from '../repositories/model-versions.repository.js';
import { withSpan } from '../observability/tracing.js';
import {
  answerOf,
  batchOf,
  completedAnswer,
  finishJob,
  firesSubscriptions,
  judge,
  recordOf,
  type CompletionAnswer,
  type FinishRequest,
  type FinishResult,
  type JobOutcome,
  type ToComplete,
} from './complete-job.usecase.js';
import type { AppContext } from './context.js';
import { finishBatch } from './finish-batch.usecase.js';
import type { Answer } from './idempotency.js';

export interface CompleteJobsInput {
  modelId: string;
  modelVersion: string;
  completions: (JobOutcome & { job_id: string; attempt?: number })[];
}

/** One job's part of a many-completions answer: what the single route would have answered. */
export interface CompletionItemAnswer {
  job_id: string;
  status_code: number;
  body: CompletionAnswer | { success: false; message: string; [detail: string]: unknown };
}

/** How many of one request's one-at-a-time completions are in flight at once. */
const COMPLETIONS_AT_ONCE = 8;

/**
 * Many completions of one model version in one request, for a worker that ran a claimed batch.
 * Each job gets exactly what the single completion route would have answered (replays,
 * fencing, refusals, batches), in order, and one refused completion refuses nothing else.
 * Jobs that only need their row written are completed together, in one transaction and one
 * statement; a job whose success fires a subscription is completed on its own, as the single
 * route does, so that its subscriptions fire exactly once.
 */
export async function completeJobs(
  ctx: AppContext,
  caller: Caller,
  input: CompleteJobsInput,
): Promise<CompletionItemAnswer[]> {
  const { modelId, modelVersion, completions } = input;
  const seen = new Set<string>();
  for (const completion of completions) {
    if (seen.has(completion.job_id)) {
      throw badRequest(
        `job "${completion.job_id}" appears twice in completions; send each job once`,
      );
    }
    seen.add(completion.job_id);
  }
  const requests: FinishRequest[] = completions.map((completion) => ({
    jobId: completion.job_id,
    modelId,
    modelVersion,
    attempts: [completion.attempt],
    clients: caller.clients,
    outcome: completion,
  }));
  const results = new Array<FinishResult>(requests.length);
  const alone = await finishTogether(ctx, input, requests, results);
  let next = 0;
  const worker = async () => {
    while (next < alone.length) {
      const index = alone[next++]!;
      results[index] = await finishJob(ctx, requests[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(COMPLETIONS_AT_ONCE, alone.length) }, worker));
  return results.map((result, index) => {
    const { jobId } = requests[index]!;
    try {
      const answer = answerOf(result, { jobId, modelId, modelVersion });
      return { job_id: jobId, status_code: answer.statusCode, body: answer.body };
    } catch (error) {
      if (!(error instanceof AppError)) throw error;
      const body = { success: false as const, message: error.message, ...error.details };
      return { job_id: jobId, status_code: error.status, body };
    }
  });
}

/**
 * Judges every request against its locked job and records, in one transaction, each
 * completion that fires no subscription; fills `results` for those and for refusals and
 * replays. Answers the indexes left to complete one at a time: those a subscription matches,
 * or all of them when the transaction was rolled back (a deadlock with a bulk action that
 * locks in another order), since nothing of it was kept.
 */
async function finishTogether(
  ctx: AppContext,
  { modelId, modelVersion }: { modelId: string; modelVersion: string },
  requests: FinishRequest[],
  results: FinishResult[],
): Promise<number[]> {
  const span = { attributes: () => ({ 'pie.jobs': requests.length }) };
  const together = withSpan('pie.complete.many', span, () =>
    ctx.events.afterCommit((emit) =>
      ctx.db.transaction(async (tx) => {
        const jobs = await lockJobsForCompletion(
          tx,
          requests.map((request) => request.jobId),
        );
        // As on every route under a model version, one that does not exist is the request's
        // 404; a job of the version shows it exists without asking.
        const ofVersion = (job: Job) =>
          job.model_id === modelId && job.model_version === modelVersion;
        if (
          ![...jobs.values()].some(ofVersion) &&
          (await findVersion(tx, modelId, modelVersion)) === undefined
        ) {
          throw notFound(`version "${modelVersion}" of model "${modelId}" not found`);
        }
        const decided = new Map<number, FinishResult>();
        const alone: number[] = [];
        const toRecord: {
          index: number;
          verdict: ToComplete;
          answer: Answer<CompletionAnswer, 200 | 207>;
        }[] = [];
        requests.forEach((request, index) => {
          const job = jobs.get(request.jobId);
          const verdict = judge(job, request);
          if (verdict.kind !== 'to-complete') decided.set(index, verdict);
          else if (job?.subscribed === true && firesSubscriptions(verdict)) alone.push(index);
          else toRecord.push({ index, verdict, answer: completedAnswer(verdict, []) });
        });
        const done = await completeMany(
          tx,
          emit,
          toRecord.map(({ verdict, answer }) => ({
            job: verdict.job,
            completion: recordOf(verdict, answer),
          })),
        );
        for (const { index, verdict, answer } of toRecord) {
          if (done.has(verdict.job.job_id)) {
            decided.set(index, { kind: 'completed', answer, batch: batchOf(verdict.job) });
          } else alone.push(index);
        }
        return { decided, alone };
      }),
    ),
  );
  let outcome: Awaited<typeof together>;
  try {
    outcome = await together;
  } catch (error) {
    if (!isRolledBack(error)) throw error;
    return requests.map((_, index) => index);
  }
  const batches = new Map<string, { clientId: string; batchId: string }>();
  for (const [index, result] of outcome.decided) {
    results[index] = result;
    if (result.kind === 'completed' && result.batch !== undefined) {
      batches.set(`${result.batch.clientId}/${result.batch.batchId}`, result.batch);
    }
  }
  // Committed: as after a single completion, finish each batch these jobs may have ended.
  for (const batch of batches.values()) {
    await finishBatch(ctx, batch.clientId, batch.batchId).catch(() => undefined);
  }
  return outcome.alone.sort((a, b) => a - b);
}

/** A transaction PostgreSQL rolled back to break a deadlock or a serialization conflict. */
const isRolledBack = (error: unknown) => ['40001', '40P01'].includes(sqlState(error) ?? '');
