import type { Caller } from '../auth/caller.js';
import { wakeKey } from '../lifecycle/job-wakeups.js';
import { loadJobTarget } from '../repositories/job-targets.repository.js';
import { insertInitJobs } from '../repositories/jobs.repository.js';
import type { AppContext } from './context.js';
import { answerIdempotently, type IdempotencyKey, type IdempotentAnswer } from './idempotency.js';
import { withinOpenJobQuota } from './open-job-admission.js';
import { requireRunnableTarget } from './start-job.js';

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
          const request = { clientId, domainId, serviceId: null, key: 'default' };
          const target = requireRunnableTarget(
            await loadJobTarget(q, clientId, domainId, null, request.key),
            { ...request, jobType: 'inference', models: caller.models },
          );
          const { services, batchId } = await insertInitJobs(q, {
            kind: input.kind ?? 'init',
            clientId,
            domainId,
            assignmentId: target.assignment_id,
            modelId: target.model_id,
            modelVersion: target.model_version,
            config: target.config,
            maxAttempts: target.max_attempts,
            timeoutS: target.timeout_s,
            handlerType: target.handler_type,
            priority: target.priority,
          });
          started = services.length;
          if (started > 0) {
            emit({ type: 'queued', jobType: 'inference', count: started, wake: wakeKey(target) });
          }
          return {
            statusCode: 202,
            body: { dispatched_services: services, batch_id: batchId },
          };
        },
      );
      return { result: answer, started: answer.replayed ? 0 : started };
    }),
  );
}
