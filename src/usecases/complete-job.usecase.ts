import { isDeepStrictEqual } from 'node:util';
import { grants, type Caller, type Grant } from '../auth/caller.js';
import type { Queryable } from '../db/database.js';
import { conflict, forbidden, notFound } from '../domain/errors.js';
import { cascadeRefusal } from '../domain/lineage.js';
import type { FinalStatus } from '../domain/job-status.js';
import type { TriggeredEvent } from '../domain/triggered-event.js';
import type { EmitJobEvent } from '../lifecycle/job-events.js';
import { complete, completeIfPlain } from '../lifecycle/finish.js';
import type { Job } from '../repositories/jobs.repository.js';
import {
  lockJobForCompletion,
  type CompletionRecord,
  type LockedJob,
} from '../repositories/job-completion.repository.js';
import {
  findGatheringJob,
  holdForDebounce,
  joinGatheringJob,
  lockSubscriptionForFiring,
} from '../repositories/debounce.repository.js';
import { findMatchingSubscriptions } from '../repositories/subscriptions.repository.js';
import { linkToTrace, withSpan } from '../observability/tracing.js';
import type { AppContext } from './context.js';
import type { Answer } from './idempotency.js';
import { finishBatch } from './finish-batch.usecase.js';
import { startSubscriptionJob } from './subscription-job.js';

/** What a handler reports of a job it ran. */
export interface JobOutcome {
  status: 'success' | 'failure';
  output?: unknown;
  error?: unknown;
}

export type { TriggeredEvent };

export interface CompletionAnswer {
  job_id: string;
  model_id: string;
  model_version: string;
  status: 'success' | 'failure';
  triggered_events: TriggeredEvent[];
}

export interface FinishRequest {
  jobId: string;
  modelId: string;
  modelVersion: string;
  /** The attempts the reporter names (its body's, its callback token's); each must be current. */
  attempts: readonly (number | undefined)[];
  /** The clients the reporter may act on (the dispatcher acts for all of them). */
  clients: Grant;
  outcome: JobOutcome;
}

/** How a report of a job's outcome ended: recorded, replayed, or refused and why. */
export type FinishResult =
  | {
      kind: 'completed';
      answer: Answer<CompletionAnswer, 200 | 207>;
      /** The batch the job belongs to, which this completion may have finished. */
      batch: { clientId: string; batchId: string } | undefined;
    }
  | { kind: 'replayed'; answer: Answer<CompletionAnswer, 200 | 207> }
  | { kind: 'not-found' }
  | { kind: 'forbidden'; clientId: string }
  /** The job was completed before with a different outcome. */
  | { kind: 'completed-differently'; status: 'success' | 'failure' }
  /** The job became final another way (cancelled, failed by dispatch, timed out). */
  | { kind: 'already-final'; status: FinalStatus }
  | { kind: 'stale-attempt'; attempt: number; current: number };

/**
 * Records a job's outcome, whoever reports it: the completion route for a model handler, or
 * the dispatcher for a command it ran. In one transaction, with the job row locked: a repeat
 * of the first completion replays its answer; otherwise the outcome is stored and, for
 * successful inference, every matching subscription starts one job. The lock is what makes
 * concurrent duplicates fire each subscription once: the second waits, then finds the first's
 * completion and replays it. A refusal writes nothing and says why.
 */
export function finishJob(ctx: AppContext, request: FinishRequest): Promise<FinishResult> {
  // Inside the completion request's span (or the dispatch's, for a command), whose trace is the
  // job's when the handler sent back the traceparent it was given; else linked to it below.
  return withSpan(
    'pie.complete',
    { attributes: () => ({ 'pie.job_id': request.jobId, 'pie.status': request.outcome.status }) },
    async (span) => {
      const result = await finishAndFinishBatch(ctx, request);
      span?.setAttribute('pie.completion.result', result.kind);
      return result;
    },
  );
}

async function finishAndFinishBatch(
  ctx: AppContext,
  request: FinishRequest,
): Promise<FinishResult> {
  const result = await ctx.events.afterCommit(
    async (emit) =>
      (await finishPlainly(ctx, emit, request)) ??
      ctx.db.transaction((tx) => finishLocked(ctx, tx, emit, request)),
  );
  if (result.kind === 'completed' && result.batch !== undefined) {
    // Committed: if this was the batch's last open job, finish it now. Should that fail, the
    // completion stands and BatchFinisherService finishes the batch within a second or so.
    await finishBatch(ctx, result.batch.clientId, result.batch.batchId).catch(() => undefined);
  }
  return result;
}

/**
 * The common completion, which needs nothing but the job's own row, in one statement
 * (`completeIfPlain`); undefined when the job is not in a state to take it plainly, and then
 * the locked path judges the report.
 */
async function finishPlainly(
  ctx: AppContext,
  emit: EmitJobEvent,
  request: FinishRequest,
): Promise<FinishResult | undefined> {
  const completion = recordedRequest(request.outcome);
  const answer = answerWith(request.jobId, request.modelId, request.modelVersion, completion, []);
  const job = await completeIfPlain(ctx.db, emit, {
    jobId: request.jobId,
    modelId: request.modelId,
    modelVersion: request.modelVersion,
    clients: request.clients,
    attempts: request.attempts.filter((attempt) => attempt !== undefined),
    completion: {
      request: completion,
      response: { status_code: answer.statusCode, body: answer.body },
    },
  });
  if (job === undefined) return undefined;
  linkToTrace(job.traceparent);
  return { kind: 'completed', answer, batch: batchOf(job) };
}

async function finishLocked(
  ctx: AppContext,
  tx: Queryable,
  emit: EmitJobEvent,
  request: FinishRequest,
): Promise<FinishResult> {
  const job = await lockJobForCompletion(tx, request.jobId);
  const verdict = judge(job, request);
  if (verdict.kind !== 'to-complete') return verdict;
  const triggered = firesSubscriptions(verdict)
    ? await fireSubscriptions(ctx, tx, emit, verdict.job, verdict.completion.output)
    : [];
  return record(tx, emit, verdict, triggered);
}

/** A completion that may be recorded: the locked job, and what it is completed with. */
export interface ToComplete {
  kind: 'to-complete';
  job: Job & { traceparent: string | null };
  completion: CompletionRecord['request'];
}

/**
 * What a report of a job's outcome comes to, given the job as locked: a refusal, a replay of
 * the first completion, or a completion to record.
 */
export function judge(
  job: LockedJob | undefined,
  request: FinishRequest,
): Exclude<FinishResult, { kind: 'completed' }> | ToComplete {
  if (
    job === undefined ||
    job.model_id !== request.modelId ||
    job.model_version !== request.modelVersion
  ) {
    return { kind: 'not-found' };
  }
  if (!grants(request.clients, job.client_id))
    return { kind: 'forbidden', clientId: job.client_id };
  linkToTrace(job.traceparent);
  const completion = recordedRequest(request.outcome);
  if (job.completion !== null) {
    const first = job.completion;
    if (!isDeepStrictEqual(first.request, completion)) {
      return { kind: 'completed-differently', status: first.request.status };
    }
    const answer = {
      statusCode: first.response.status_code as 200 | 207,
      body: first.response.body as CompletionAnswer,
    };
    return { kind: 'replayed', answer };
  }
  if (job.status === 'success' || job.status === 'failure' || job.status === 'cancelled') {
    return { kind: 'already-final', status: job.status };
  }
  for (const attempt of request.attempts) {
    if (attempt !== undefined && attempt !== job.attempt) {
      return { kind: 'stale-attempt', attempt, current: job.attempt };
    }
  }
  return { kind: 'to-complete', job, completion };
}

/** What is recorded of a reported outcome, and compared with a repeat of it. */
function recordedRequest(outcome: JobOutcome): CompletionRecord['request'] {
  return {
    status: outcome.status,
    output: outcome.output ?? null,
    error: outcome.status === 'failure' ? (outcome.error ?? null) : null,
  };
}

/** The answer a completion is recorded with, given the events its subscriptions triggered. */
export function completedAnswer(
  { job, completion }: ToComplete,
  triggered: TriggeredEvent[],
): Answer<CompletionAnswer, 200 | 207> {
  return answerWith(job.job_id, job.model_id, job.model_version, completion, triggered);
}

function answerWith(
  jobId: string,
  modelId: string,
  modelVersion: string,
  completion: CompletionRecord['request'],
  triggered: TriggeredEvent[],
): Answer<CompletionAnswer, 200 | 207> {
  const body: CompletionAnswer = {
    job_id: jobId,
    model_id: modelId,
    model_version: modelVersion,
    status: completion.status,
    triggered_events: triggered,
  };
  return { statusCode: triggered.some((event) => 'error' in event) ? 207 : 200, body };
}

export const recordOf = (
  verdict: ToComplete,
  answer: Answer<CompletionAnswer, 200 | 207>,
): CompletionRecord => ({
  request: verdict.completion,
  response: { status_code: answer.statusCode, body: answer.body },
});

export function batchOf(
  job: Pick<Job, 'client_id' | 'batch_id'>,
): { clientId: string; batchId: string } | undefined {
  return job.batch_id === null ? undefined : { clientId: job.client_id, batchId: job.batch_id };
}

async function record(
  tx: Queryable,
  emit: EmitJobEvent,
  verdict: ToComplete,
  triggered: TriggeredEvent[],
): Promise<FinishResult> {
  const answer = completedAnswer(verdict, triggered);
  await complete(tx, emit, verdict.job, recordOf(verdict, answer));
  return { kind: 'completed', answer, batch: batchOf(verdict.job) };
}

export interface CompleteJobInput {
  modelId: string;
  modelVersion: string;
  jobId: string;
  /** The attempt the handler worked on; a stale one is refused. */
  body: JobOutcome & { attempt?: number };
}

/**
 * A model handler reports a job's outcome through the completion route: the same completion
 * again returns the first answer; a different completion of a finished job, or one with a
 * stale attempt, is a 409.
 */
export async function completeJob(
  ctx: AppContext,
  caller: Caller,
  input: CompleteJobInput,
): Promise<Answer<CompletionAnswer, 200 | 207>> {
  const { jobId, modelId, modelVersion, body } = input;
  const result = await finishJob(ctx, {
    jobId,
    modelId,
    modelVersion,
    // A callback token names its attempt; a body may too. Either must be the current one.
    attempts: [body.attempt, caller.job?.attempt],
    clients: caller.clients,
    outcome: body,
  });
  return answerOf(result, input);
}

/** The completion route's answer to a finish result: the answer, or the error it throws. */
export function answerOf(
  result: FinishResult,
  { jobId, modelId, modelVersion }: { jobId: string; modelId: string; modelVersion: string },
): Answer<CompletionAnswer, 200 | 207> {
  switch (result.kind) {
    case 'completed':
    case 'replayed':
      return result.answer;
    case 'not-found':
      throw notFound(`job "${jobId}" not found for model "${modelId}" version "${modelVersion}"`);
    case 'forbidden':
      throw forbidden(`this token may not act on client "${result.clientId}"`);
    case 'completed-differently':
      throw conflict(
        `job "${jobId}" was already completed with status "${result.status}"; ` +
          'a different completion is refused',
      );
    case 'already-final':
      throw conflict(`job "${jobId}" is already final with status "${result.status}"`);
    case 'stale-attempt':
      throw conflict(
        `attempt ${result.attempt} of job "${jobId}" is stale; the current attempt is ${result.current}`,
      );
  }
}

/** Whether recording this completion would start subscription jobs: a successful inference. */
export const firesSubscriptions = (verdict: ToComplete) =>
  verdict.completion.status === 'success' && verdict.job.job_type === 'inference';

/**
 * Starts one job per matching subscription, or for a debounced one joins the job it is
 * gathering; a subscription that cannot start its job reports why.
 */
async function fireSubscriptions(
  ctx: AppContext,
  q: Queryable,
  emit: EmitJobEvent,
  job: Job,
  output: unknown,
): Promise<TriggeredEvent[]> {
  const subscriptions = await findMatchingSubscriptions(q, job);
  const events: TriggeredEvent[] = [];
  for (const subscription of subscriptions) {
    const id = subscription.subscription_id;
    const refusal = cascadeRefusal(job.lineage, id);
    if (refusal !== undefined) {
      events.push({ subscription_id: id, error: refusal });
      continue;
    }
    const debounced = subscription.debounce_s > 0;
    if (debounced) {
      let gathering = await findGatheringJob(q, job.client_id, id);
      if (gathering === undefined) {
        // None yet: take turns with other completions about to start one, then look again.
        await lockSubscriptionForFiring(q, job.client_id, id);
        gathering = await findGatheringJob(q, job.client_id, id);
      }
      if (gathering !== undefined) {
        await joinGatheringJob(
          q,
          { client_id: job.client_id, job_id: gathering },
          job.job_id,
          output,
        );
        ctx.metrics.debouncedJoins.inc();
        events.push({ subscription_id: id, job_id: gathering });
        continue;
      }
    }
    events.push(
      await startSubscriptionJob(q, emit, subscription, {
        trigger: debounced
          ? { subscription_id: id, job_ids: [job.job_id], outputs: [output], count: 1 }
          : { subscription_id: id, job_id: job.job_id, output },
        lineage: [...job.lineage, id],
        started: debounced
          ? (jobId) => holdForDebounce(q, jobId, id, subscription.debounce_s)
          : undefined,
      }),
    );
  }
  return events;
}
