import { isDeepStrictEqual } from 'node:util';
import { grants, type Caller, type Grant } from '../auth/caller.js';
import { sqlState, type Queryable } from '../db/database.js';
import { AppError, badRequest, conflict, forbidden, notFound } from '../domain/errors.js';
import { cascadeRefusal } from '../domain/lineage.js';
import type { FinalStatus } from '../domain/job-status.js';
import type { TriggeredEvent } from '../domain/triggered-event.js';
import type { EmitJobEvent } from '../lifecycle/job-events.js';
import { complete, completeMany } from '../lifecycle/finish.js';
import {
  lockJobForCompletion,
  lockJobsForCompletion,
  type CompletionRecord,
  type Job,
} from '../repositories/jobs.repository.js';
import {
  findGatheringJob,
  holdForDebounce,
  joinGatheringJob,
  lockSubscriptionForFiring,
} from '../repositories/debounce.repository.js';
import { findMatchingSubscriptions } from '../repositories/subscriptions.repository.js';
import { findVersion } from '../repositories/model-versions.repository.js';
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
  const result = await ctx.events.afterCommit((emit) =>
    ctx.db.transaction((tx) => finishLocked(ctx, tx, emit, request)),
  );
  if (result.kind === 'completed' && result.batch !== undefined) {
    // Committed: if this was the batch's last open job, finish it now. Should that fail, the
    // completion stands and BatchFinisherService finishes the batch within a second or so.
    await finishBatch(ctx, result.batch.clientId, result.batch.batchId).catch(() => undefined);
  }
  return result;
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
interface ToComplete {
  kind: 'to-complete';
  job: Job & { traceparent: string | null };
  completion: CompletionRecord['request'];
}

/**
 * What a report of a job's outcome comes to, given the job as locked: a refusal, a replay of
 * the first completion, or a completion to record.
 */
function judge(
  job: (Job & { completion: CompletionRecord | null; traceparent: string | null }) | undefined,
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
  const { outcome } = request;
  const completion: CompletionRecord['request'] = {
    status: outcome.status,
    output: outcome.output ?? null,
    error: outcome.status === 'failure' ? (outcome.error ?? null) : null,
  };
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

/** The answer a completion is recorded with, given the events its subscriptions triggered. */
function completedAnswer(
  { job, completion }: ToComplete,
  triggered: TriggeredEvent[],
): Answer<CompletionAnswer, 200 | 207> {
  const body: CompletionAnswer = {
    job_id: job.job_id,
    model_id: job.model_id,
    model_version: job.model_version,
    status: completion.status,
    triggered_events: triggered,
  };
  return { statusCode: triggered.some((event) => 'error' in event) ? 207 : 200, body };
}

const recordOf = (
  verdict: ToComplete,
  answer: Answer<CompletionAnswer, 200 | 207>,
): CompletionRecord => ({
  request: verdict.completion,
  response: { status_code: answer.statusCode, body: answer.body },
});

function batchOf(job: Job): { clientId: string; batchId: string } | undefined {
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
function answerOf(
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

/** Whether recording this completion would start subscription jobs: a successful inference. */
const firesSubscriptions = (verdict: ToComplete) =>
  verdict.completion.status === 'success' && verdict.job.job_type === 'inference';

/** A transaction PostgreSQL rolled back to break a deadlock or a serialization conflict. */
const isRolledBack = (error: unknown) => ['40001', '40P01'].includes(sqlState(error) ?? '');

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
