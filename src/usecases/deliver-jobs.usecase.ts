import type { DeliveryOutcome, JobError } from '../domain/delivery.js';
import type { Handler, HandlerType } from '../domain/handlers.js';
import {
  failAttempt,
  handOver,
  releaseHeldJobs,
  renewLease,
  retryOrFail,
} from '../lifecycle/attempt.js';
import {
  claimPushJobs,
  listFollowedJobs,
  type Claim,
  type ClaimedJob,
} from '../lifecycle/claim.js';
import { expireLeases, timeOutOverdueJobs } from '../lifecycle/expiry.js';
import { findAttempts } from '../repositories/jobs.repository.js';
import { findVersion } from '../repositories/model-versions.repository.js';
import { finishJob } from './complete-job.usecase.js';
import type { AppContext } from './context.js';

/**
 * What the dispatcher does to jobs, in the job's own terms: claim those it pushes to
 * handlers, keep their leases, record what each delivery came to, give back what it holds
 * when it stops, and put back or fail jobs whose lease or deadline ran out.
 */

export interface PushClaim {
  /** Who holds the leases (`locked_by`): this process. */
  holder: string;
  leaseS: number;
  limit: number;
  /** The handler kinds this process delivers to. */
  kinds: readonly HandlerType[];
}

export function claimJobsToPush(ctx: AppContext, claim: PushClaim): Promise<Claim> {
  return claimPushJobs(ctx.db, claim.holder, claim.leaseS, claim.limit, claim.kinds);
}

/** Keeps the lease of an attempt under way; false when the attempt is over. */
export async function keepLease(
  ctx: AppContext,
  job: ClaimedJob,
  leaseS: number,
): Promise<boolean> {
  return (await renewLease(ctx.db, job.job_id, job.attempt, leaseS, false)) !== undefined;
}

/** A version's handler as configured now; undefined when the version is gone. */
export async function versionHandler(
  ctx: AppContext,
  modelId: string,
  modelVersion: string,
): Promise<Handler | undefined> {
  return (await findVersion(ctx.db, modelId, modelVersion))?.handler;
}

/** Why an attempt under way here ended elsewhere: its job was cancelled, or it is over. */
export type AttemptEnd = 'cancelled' | 'over';

/**
 * Of these attempts under way here, those that ended meanwhile: the job was cancelled during
 * the attempt, or the attempt is over another way (requeued, timed out, gone).
 */
export async function endedAttempts(
  ctx: AppContext,
  jobs: readonly Pick<ClaimedJob, 'job_id' | 'attempt'>[],
): Promise<Map<string, AttemptEnd>> {
  const rows = await findAttempts(
    ctx.db,
    jobs.map((job) => job.job_id),
  );
  const current = new Map(rows.map((row) => [row.job_id, row]));
  const ended = new Map<string, AttemptEnd>();
  for (const job of jobs) {
    const row = current.get(job.job_id);
    const sameAttempt = row?.attempt === job.attempt;
    if (sameAttempt && (row?.status === 'dispatched' || row?.status === 'running')) continue;
    ended.set(job.job_id, sameAttempt && row?.status === 'cancelled' ? 'cancelled' : 'over');
  }
  return ended;
}

/** The handler has the job (a command started, a push handler accepted it). */
export function noteDispatched(ctx: AppContext, job: ClaimedJob): void {
  ctx.events.publish([
    {
      type: 'dispatched',
      handler: job.handler.type,
      attempt: job.attempt,
      createdAt: job.created_at,
    },
  ]);
}

/**
 * Records what delivering one attempt came to, fenced on that attempt: a handler that accepted
 * the job keeps it until its completion arrives; a command's result completes the job as a
 * handler's completion would; a transient failure retries the job (or fails it at its last
 * attempt); any other failure fails it. A job cancelled or finished meanwhile stays as it is.
 */
export async function recordDelivery(
  ctx: AppContext,
  job: ClaimedJob,
  outcome: DeliveryOutcome,
): Promise<void> {
  switch (outcome.kind) {
    case 'handed-over':
      await handOver(ctx.db, job, outcome.reference ?? null);
      return;
    case 'finished':
      // Any refusal (cancelled, timed out, a newer attempt) means the job's fate is recorded.
      await finishJob(ctx, {
        jobId: job.job_id,
        modelId: job.model_id,
        modelVersion: job.model_version,
        attempts: [job.attempt],
        clients: '*',
        outcome: {
          status: outcome.status,
          output: outcome.output ?? undefined,
          error: outcome.error,
        },
      });
      return;
    case 'retry':
      await ctx.events.afterCommit((emit) =>
        retryOrFail(ctx.db, emit, job, outcome.error, outcome.retryAfterMs),
      );
      return;
    case 'fail':
      await ctx.events.afterCommit((emit) => failAttempt(ctx.db, emit, job, outcome.error));
      return;
  }
}

/** Gives back the jobs `holder` still holds, due at once; returns how many. */
export function releaseJobsHeldBy(ctx: AppContext, holder: string): Promise<number> {
  return ctx.events.afterCommit((emit) => releaseHeldJobs(ctx.db, emit, holder));
}

/** Puts back jobs whose lease ran out and fails those past their deadline, up to `limit` each. */
export async function reapLeasesAndDeadlines(ctx: AppContext, limit: number): Promise<number> {
  const expired = await ctx.events.afterCommit((emit) => expireLeases(ctx.db, emit, limit));
  const overdue = await ctx.events.afterCommit((emit) => timeOutOverdueJobs(ctx.db, emit, limit));
  return expired + overdue;
}

/** Jobs a handler accepted with a reference to follow (TrueFoundry runs). */
export function jobsToFollow(ctx: AppContext, handlerType: HandlerType, limit: number) {
  return listFollowedJobs(ctx.db, handlerType, limit);
}

/** Fails an attempt whose handler reported it failed without completing it. */
export function failFollowedJob(ctx: AppContext, job: ClaimedJob, error: JobError) {
  return ctx.events.afterCommit((emit) => failAttempt(ctx.db, emit, job, error));
}
