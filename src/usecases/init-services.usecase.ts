import type { Caller } from '../auth/caller.js';
import type { Queryable } from '../db/database.js';
import type { EmitJobEvent } from '../lifecycle/job-events.js';
import { wakeKey } from '../lifecycle/job-wakeups.js';
import { loadJobTarget } from '../repositories/job-targets.repository.js';
import { insertInitJobs } from '../repositories/jobs.repository.js';
import type { AppContext } from './context.js';
import {
  answerIdempotently,
  type Answer,
  type IdempotencyKey,
  type IdempotentAnswer,
} from './idempotency.js';
import { withinOpenJobQuota } from './open-job-admission.js';
import { requireRunnableTarget } from './start-job.js';
import { currentTraceparent } from '../observability/tracing.js';

export interface InitServicesInput {
  clientId: string;
  domainId: string;
  idempotency?: IdempotencyKey | undefined;
  /** What started it: the init route, or a schedule's tick. */
  kind?: 'init' | 'schedule';
}

export interface InitAnswer {
  dispatched_services: string[];
  /** The batch of the jobs started; null when no service was left to start one for. */
  batch_id: string | null;
}

/**
 * Services init: one inference job per non-departed service through the domain's active
 * default assignment, with each service's stored resolved_features and empty input. One read
 * for the checks, then one multi-row insert; no features change. Answered 202 with the
 * services that got a job, under the open-jobs quota and the request's Idempotency-Key.
 */
export function initServices(
  ctx: AppContext,
  caller: Caller,
  input: InitServicesInput,
): Promise<IdempotentAnswer<InitAnswer>> {
  const { clientId, domainId } = input;
  return withinOpenJobQuota(ctx, clientId, () =>
    ctx.events.afterCommit(async (emit) => {
      let started = 0;
      const answer = await answerIdempotently(
        ctx,
        caller,
        clientId,
        input.idempotency,
        async (q) => {
          const init = await startServicesInit(
            q,
            caller,
            { clientId, domainId, kind: input.kind ?? 'init' },
            emit,
          );
          started = init.body.dispatched_services.length;
          return init;
        },
      );
      return { result: answer, started: answer.replayed ? 0 : started };
    }),
  );
}

/**
 * The work of services init on `q`, inside the caller's transaction (or as one statement after
 * the read), emitting a `queued` event for the jobs: what the route runs under its
 * Idempotency-Key, and a schedule's tick runs in the transaction that moves the schedule on.
 * `priority` overrides the assignment's.
 */
export async function startServicesInit(
  q: Queryable,
  caller: Caller,
  input: {
    clientId: string;
    domainId: string;
    kind: 'init' | 'schedule';
    priority?: number | undefined;
  },
  emit: EmitJobEvent,
): Promise<Answer<InitAnswer, 202>> {
  const { clientId, domainId } = input;
  const request = { clientId, domainId, serviceId: null, key: 'default' };
  const target = requireRunnableTarget(
    await loadJobTarget(q, clientId, domainId, null, request.key),
    { ...request, jobType: 'inference', models: caller.models },
  );
  const { services, batchId } = await insertInitJobs(q, {
    kind: input.kind,
    clientId,
    domainId,
    assignmentId: target.assignment_id,
    modelId: target.model_id,
    modelVersion: target.model_version,
    config: target.config,
    maxAttempts: target.max_attempts,
    timeoutS: target.timeout_s,
    handlerType: target.handler_type,
    priority: input.priority ?? target.priority,
    traceparent: currentTraceparent(),
  });
  if (services.length > 0) {
    emit({
      type: 'queued',
      jobType: 'inference',
      count: services.length,
      wake: wakeKey(target),
    });
  }
  return { statusCode: 202, body: { dispatched_services: services, batch_id: batchId } };
}
