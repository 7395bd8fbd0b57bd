import { isDeepStrictEqual } from 'node:util';
import { grants, type Caller } from '../auth/caller.js';
import { cascadeRefusal } from '../domain/lineage.js';
import { AppError, conflict, forbidden, notFound } from '../domain/errors.js';
import type { Answer } from '../http/idempotency.js';
import {
  lockJobForCompletion,
  recordCompletion,
  type CompletionRecord,
  type Job,
} from '../repositories/jobs.repository.js';
import { findMatchingSubscriptions } from '../repositories/subscriptions.repository.js';
import type { Queryable } from '../db/database.js';
import type { Metrics } from '../metrics.js';
import type { AppContext } from './context.js';
import { startJob } from './start-job.js';

export interface CompleteJobBody {
  status: 'success' | 'failure';
  output?: unknown;
  error?: unknown;
  /** The attempt the handler worked on; a stale one is refused. */
  attempt?: number;
}

export type TriggeredEvent =
  { subscription_id: string; job_id: string } | { subscription_id: string; error: string };

export interface CompletionAnswer {
  job_id: string;
  model_id: string;
  model_version: string;
  status: 'success' | 'failure';
  triggered_events: TriggeredEvent[];
}

/**
 * A model handler reports a job's outcome (seed 002). In one transaction, with the job row
 * locked: a repeat of the first completion replays its answer, a different one is a 409;
 * otherwise the outcome is stored and, for successful inference, every matching subscription
 * starts one job. The lock is what makes concurrent duplicates fire each subscription once:
 * the second waits, then finds the first's completion and replays it.
 */
export async function completeJob(
  ctx: AppContext,
  caller: Caller,
  path: { modelId: string; modelVersion: string; jobId: string },
  body: CompleteJobBody,
): Promise<Answer<CompletionAnswer, 200 | 207>> {
  const wakes: string[] = [];
  const answer = await ctx.db.transaction(
    async (tx): Promise<Answer<CompletionAnswer, 200 | 207>> => {
      const job = await lockJobForCompletion(tx, path.jobId);
      if (
        job === undefined ||
        job.model_id !== path.modelId ||
        job.model_version !== path.modelVersion
      ) {
        throw notFound(
          `job "${path.jobId}" not found for model "${path.modelId}" version "${path.modelVersion}"`,
        );
      }
      if (!grants(caller.clients, job.client_id)) {
        throw forbidden(`this token may not act on client "${job.client_id}"`);
      }
      const request: CompletionRecord['request'] = {
        status: body.status,
        output: body.output ?? null,
        error: body.status === 'failure' ? (body.error ?? null) : null,
      };
      if (job.completion !== null) {
        if (isDeepStrictEqual(job.completion.request, request)) {
          return {
            statusCode: job.completion.response.status_code as 200 | 207,
            body: job.completion.response.body as CompletionAnswer,
          };
        }
        throw conflict(
          `job "${job.job_id}" was already completed with status "${job.completion.request.status}"; ` +
            'a different completion is refused',
        );
      }
      if (job.status === 'success' || job.status === 'failure' || job.status === 'cancelled') {
        throw conflict(`job "${job.job_id}" is already final with status "${job.status}"`);
      }
      // A callback token names its attempt; a body may too. Either must be the current one.
      for (const attempt of [body.attempt, caller.job?.attempt]) {
        if (attempt !== undefined && attempt !== job.attempt) {
          throw conflict(
            `attempt ${attempt} of job "${job.job_id}" is stale; the current attempt is ${job.attempt}`,
          );
        }
      }

      const triggered =
        body.status === 'success' && job.job_type === 'inference'
          ? await fireSubscriptions(tx, ctx.metrics, job, request.output, wakes)
          : [];
      const answer: CompletionAnswer = {
        job_id: job.job_id,
        model_id: job.model_id,
        model_version: job.model_version,
        status: body.status,
        triggered_events: triggered,
      };
      const statusCode: 200 | 207 = triggered.some((event) => 'error' in event) ? 207 : 200;
      await recordCompletion(tx, job, {
        request,
        response: { status_code: statusCode, body: answer },
      });
      ctx.metrics.jobsFinished.inc({ job_type: job.job_type, status: body.status });
      return { statusCode, body: answer };
    },
  );
  // The jobs the subscriptions started are committed now.
  ctx.wakeups.announce(wakes);
  return answer;
}

/** Starts one job per matching subscription; a subscription that cannot start reports why. */
async function fireSubscriptions(
  q: Queryable,
  metrics: Metrics,
  job: Job,
  output: unknown,
  wakes: string[],
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
    try {
      const started = await startJob(q, {
        clientId: job.client_id,
        domainId: job.domain_id,
        serviceId: subscription.action.service_id,
        key: subscription.action.assignment_key,
        jobType: subscription.action.job_type,
        input: subscription.input,
        subscribe: false,
        trigger: { subscription_id: id, job_id: job.job_id, output },
        lineage: [...job.lineage, id],
        models: '*',
      });
      events.push({ subscription_id: id, job_id: started.job_id });
      wakes.push(started.wake);
      metrics.jobsCreated.inc({ job_type: subscription.action.job_type });
    } catch (error) {
      // Only PIE's own refusals (inactive domain, archived assignment, contract mismatch...)
      // are per-subscription outcomes; a database fault aborts the whole completion.
      if (!(error instanceof AppError)) throw error;
      events.push({ subscription_id: id, error: error.message });
    }
  }
  return events;
}
