import { grants, type Caller } from '../auth/caller.js';
import { buildEnvelope } from '../dispatch/envelope.js';
import { versionKey } from '../dispatch/job-wakeups.js';
import type { Envelope } from '../domain/delivery.js';
import { isFinal } from '../domain/job-status.js';
import { badRequest, conflict, forbidden, notFound } from '../domain/errors.js';
import * as dispatch from '../repositories/dispatch.repository.js';
import { findVersion } from '../repositories/model-versions.repository.js';
import { findJobClient, lockJobForCompletion } from '../repositories/jobs.repository.js';
import type { AppContext } from './context.js';

export interface ClaimBody {
  worker_id: string;
  max_jobs?: number;
  wait_ms?: number;
  lease_s?: number;
}

/**
 * A pull worker claims up to `max_jobs` queued jobs of one model version under a lease
 * (SPEC section 5). With none ready it waits, woken by NOTIFY, until `wait_ms` passes, or until
 * the process begins shutting down: then it answers at once with what it has (nothing), so
 * the long poll does not hold the shutdown up.
 */
export async function claimJobs(
  ctx: AppContext,
  caller: Caller,
  modelId: string,
  modelVersion: string,
  body: ClaimBody,
  signal: AbortSignal,
): Promise<{ jobs: Envelope[] }> {
  if ((await findVersion(ctx.db, modelId, modelVersion)) === undefined) {
    throw notFound(`version "${modelVersion}" of model "${modelId}" not found`);
  }
  const until = Date.now() + (body.wait_ms ?? 0);
  for (;;) {
    // Draining: take no new leases; the worker claims from another process (or this one
    // restarted).
    if (ctx.wakeups.draining) return { jobs: [] };
    const claimed = await dispatch.claimWorkerJobs(
      ctx.db,
      modelId,
      modelVersion,
      caller.clients,
      body.worker_id,
      body.lease_s ?? 60,
      body.max_jobs ?? 1,
    );
    const remaining = until - Date.now();
    if (claimed.length > 0 || remaining <= 0 || signal.aborted) {
      const jobs = await Promise.all(
        claimed.map((job) => buildEnvelope(job, ctx.publicUrl(), ctx.callbacks)),
      );
      for (const job of claimed) {
        if (job.attempt === 1) {
          const seconds = (Date.now() - Date.parse(job.created_at)) / 1000;
          ctx.metrics.dispatchLatency.observe({ handler: 'worker' }, seconds);
        }
        ctx.metrics.attempts.inc({ handler: 'worker', outcome: 'claimed' });
      }
      return { jobs };
    }
    // Retried jobs become claimable at their run_at, which no NOTIFY announces: look again
    // at least every second.
    await ctx.wakeups.wait(versionKey(modelId, modelVersion), Math.min(remaining, 1000), signal);
  }
}

const MAX_ATTEMPT = 2_147_483_647;

export interface HeartbeatBody {
  attempt?: number;
  lease_s?: number;
  /** `running`: the worker has started the job (SPEC's optional status). */
  status?: 'running';
}

/** Extends the lease of the caller's attempt; a stale attempt or a final job is a 409. */
export async function heartbeat(
  ctx: AppContext,
  caller: Caller,
  path: { modelId: string; modelVersion: string; jobId: string },
  body: HeartbeatBody,
) {
  const attempt = body.attempt ?? caller.job?.attempt;
  if (attempt === undefined) throw badRequest('attempt is required (or use the callback token)');
  if (caller.clients !== '*') {
    const owner = await findJobClient(ctx.db, path.jobId);
    if (owner !== undefined && !grants(caller.clients, owner)) {
      throw forbidden(`this token may not act on client "${owner}"`);
    }
  }
  if (caller.job !== undefined && caller.job.attempt !== attempt) {
    throw conflict(`this callback token is for attempt ${caller.job.attempt}, not ${attempt}`);
  }
  // `attempt` is an int4 column: a larger number is never the current attempt (and PostgreSQL
  // would refuse it as a parameter), so it goes straight to the explanation below.
  const renewed =
    attempt <= MAX_ATTEMPT
      ? await dispatch.renewLease(
          ctx.db,
          path.jobId,
          attempt,
          body.lease_s ?? 60,
          body.status === 'running',
        )
      : undefined;
  if (renewed !== undefined) return { job_id: path.jobId, attempt, status: renewed.status };

  // Say why: unknown job, another model's, finished, or a stale attempt.
  const job = await ctx.db.transaction((tx) => lockJobForCompletion(tx, path.jobId));
  if (
    job === undefined ||
    job.model_id !== path.modelId ||
    job.model_version !== path.modelVersion
  ) {
    throw notFound(
      `job "${path.jobId}" not found for model "${path.modelId}" version "${path.modelVersion}"`,
    );
  }
  if (isFinal(job.status))
    throw conflict(`job "${path.jobId}" is already final with status "${job.status}"`);
  throw conflict(
    `attempt ${attempt} of job "${path.jobId}" is stale; the current attempt is ${job.attempt}`,
  );
}
