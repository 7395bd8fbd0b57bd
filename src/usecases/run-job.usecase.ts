import type { Caller } from '../auth/caller.js';
import type { AppContext } from './context.js';
import { answerIdempotently, type IdempotencyKey, type IdempotentAnswer } from './idempotency.js';
import { withinOpenJobQuota } from './open-job-admission.js';
import { startJob } from './start-job.js';

export interface RunJobBody {
  job_type?: string;
  input?: Record<string, unknown>;
  subscribe?: boolean;
  /** -100..100; the assignment's priority when absent. */
  priority?: number;
}

export interface JobPath {
  clientId: string;
  domainId: string;
  /** null on the domain-scope route. */
  serviceId: string | null;
  key: string;
}

export interface RunJobInput {
  path: JobPath;
  body: RunJobBody;
  idempotency?: IdempotencyKey | undefined;
}

export type RunJobAnswer = { job_id: string } | { job_id: string; subscription_id: string };

/**
 * Runs a job through the assignment at `path`: under the open-jobs quota and the request's
 * Idempotency-Key, the job is queued and answered 202 with its id (and, with `subscribe`, the
 * id of its retraining subscription).
 */
export function runJob(
  ctx: AppContext,
  caller: Caller,
  input: RunJobInput,
): Promise<IdempotentAnswer<RunJobAnswer>> {
  const { path, body } = input;
  const jobType = body.job_type ?? 'inference';
  const subscribe = body.subscribe === true;
  return withinOpenJobQuota(ctx, path.clientId, () =>
    ctx.events.afterCommit(async (emit) => {
      const answer = await answerIdempotently(
        ctx,
        caller,
        path.clientId,
        input.idempotency,
        async (q) => {
          const started = await startJob(
            q,
            {
              ...path,
              jobType,
              input: body.input ?? {},
              subscribe,
              trigger: null,
              lineage: [],
              models: caller.models,
              priority: body.priority,
            },
            { targets: ctx.jobTargets, batcher: ctx.jobInserts },
          );
          emit({ type: 'queued', jobType, count: 1, wake: started.wake });
          const sent: RunJobAnswer =
            subscribe && started.subscription_id !== null
              ? { job_id: started.job_id, subscription_id: started.subscription_id }
              : { job_id: started.job_id };
          return { statusCode: 202, body: sent };
        },
      );
      return { result: answer, started: answer.replayed ? 0 : 1 };
    }),
  );
}
