import { grants, type Caller } from '../auth/caller.js';
import type { Envelope } from '../domain/delivery.js';
import { badRequest, conflict, forbidden, notFound, unavailable } from '../domain/errors.js';
import { isFinal } from '../domain/job-status.js';
import { MAX_ATTEMPT, renewLease } from '../lifecycle/attempt.js';
import { claimWorkerJobs } from '../lifecycle/claim.js';
import { versionKey } from '../lifecycle/job-wakeups.js';
import { findJobClient } from '../repositories/jobs.repository.js';
import { lockJobForCompletion } from '../repositories/job-completion.repository.js';
import { findVersion } from '../repositories/model-versions.repository.js';
import type { AppContext } from './context.js';
import { buildEnvelope } from './envelope.js';

export interface ClaimInput {
  modelId: string;
  modelVersion: string;
  body: { worker_id: string; max_jobs?: number; wait_ms?: number; lease_s?: number };
  /** Aborted when the worker hangs up: the long poll ends. */
  signal: AbortSignal;
}

/**
 * A pull worker claims up to `max_jobs` queued jobs of one model version under a lease, each
 * with a callback token for its attempt. With none ready it waits, woken when jobs are
 * queued, until `wait_ms` passes, or until the process begins shutting down: then it answers
 * at once with what it has (nothing), so the long poll does not hold the shutdown up. A claim
 * that arrives while the process shuts down is a 503: it takes no new leases, and the worker
 * should claim from another process (or this one restarted) after a pause.
 */
export async function claimJobs(
  ctx: AppContext,
  caller: Caller,
  input: ClaimInput,
): Promise<{ jobs: Envelope[] }> {
  const { modelId, modelVersion, body, signal } = input;
  if (ctx.wakeups.draining) {
    throw unavailable('this PIE process is shutting down; claim again shortly', 1);
  }
  const until = Date.now() + (body.wait_ms ?? 0);
  for (let first = true; ; first = false) {
    if (ctx.wakeups.draining) return { jobs: [] };
    const key = versionKey(modelId, modelVersion);
    const mark = ctx.wakeups.mark(key);
    const { jobs: claimed } = await claimWorkerJobs(
      ctx.db,
      modelId,
      modelVersion,
      caller.clients,
      body.worker_id,
      body.lease_s ?? 60,
      body.max_jobs ?? 1,
    );
    // Jobs claimed show the version exists; only an empty first claim asks (a 404 or a wait).
    if (
      first &&
      claimed.length === 0 &&
      (await findVersion(ctx.db, modelId, modelVersion)) === undefined
    ) {
      throw notFound(`version "${modelVersion}" of model "${modelId}" not found`);
    }
    const remaining = until - Date.now();
    if (claimed.length > 0 || remaining <= 0 || signal.aborted) {
      const jobs = await Promise.all(
        claimed.map((job) => buildEnvelope(job, ctx.publicUrl(), ctx.callbacks)),
      );
      ctx.events.publish(
        claimed.map((job) => ({
          type: 'dispatched',
          handler: 'worker',
          attempt: job.attempt,
          createdAt: job.created_at,
        })),
      );
      for (let i = 0; i < claimed.length; i++) {
        ctx.metrics.attempts.inc({ handler: 'worker', outcome: 'claimed' });
      }
      return { jobs };
    }
    // Retried jobs become claimable at their run_at, which no wake-up announces: look again
    // at least every second.
    await ctx.wakeups.wait(key, Math.min(remaining, 1000), signal, mark);
  }
}

export interface HeartbeatInput {
  modelId: string;
  modelVersion: string;
  jobId: string;
  body: {
    attempt?: number;
    lease_s?: number;
    /** `running`: the worker has started the job. */
    status?: 'running';
  };
}

/** Extends the lease of the caller's attempt; a stale attempt or a final job is a 409. */
export async function heartbeat(ctx: AppContext, caller: Caller, input: HeartbeatInput) {
  const { modelId, modelVersion, jobId, body } = input;
  const attempt = body.attempt ?? caller.job?.attempt;
  if (attempt === undefined) throw badRequest('attempt is required (or use the callback token)');
  if (caller.clients !== '*') {
    const owner = await findJobClient(ctx.db, jobId);
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
      ? await renewLease(ctx.db, jobId, attempt, body.lease_s ?? 60, body.status === 'running')
      : undefined;
  if (renewed !== undefined) return { job_id: jobId, attempt, status: renewed.status };

  // Say why: unknown job, another model's, finished, or a stale attempt.
  const job = await ctx.db.transaction((tx) => lockJobForCompletion(tx, jobId));
  if (job === undefined || job.model_id !== modelId || job.model_version !== modelVersion) {
    throw notFound(`job "${jobId}" not found for model "${modelId}" version "${modelVersion}"`);
  }
  // A worker stops its command on any refusal; this one tells its operator why.
  if (job.status === 'cancelled') {
    ctx.metrics.cancellationsDelivered.inc({ handler: 'worker', outcome: 'delivered' });
    throw conflict(`job "${jobId}" was cancelled; stop working on it`);
  }
  if (isFinal(job.status))
    throw conflict(`job "${jobId}" is already final with status "${job.status}"`);
  throw conflict(
    `attempt ${attempt} of job "${jobId}" is stale; the current attempt is ${job.attempt}`,
  );
}
