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
): Promise<IdempotentAnswer<{ dispatched_services: string[] }>> {
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
          const dispatched = await insertInitJobs(q, {
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
          started = dispatched.length;
          if (started > 0) {
            emit({ type: 'queued', jobType: 'inference', count: started, wake: wakeKey(target) });
          }
          return { statusCode: 202, body: { dispatched_services: dispatched } };
        },
      );
      return { result: answer, started: answer.replayed ? 0 : started };
    }),
  );
}
