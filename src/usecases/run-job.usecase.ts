import type { Caller } from '../auth/caller.js';
import type { Queryable } from '../db/database.js';
import type { Answer } from '../http/idempotency.js';
import { startJob, type HotPath, type StartedJob } from './start-job.js';

export interface RunJobBody {
  job_type?: string;
  input?: Record<string, unknown>;
  subscribe?: boolean;
}

export interface JobPath {
  clientId: string;
  domainId: string;
  /** null on the domain-scope route. */
  serviceId: string | null;
  key: string;
}

export type RunJobAnswer = { job_id: string } | { job_id: string; subscription_id: string };

/** Runs a job through the assignment at `path` and answers 202 with its id (seed 000). */
export async function runJob(
  q: Queryable,
  hot: HotPath,
  caller: Caller,
  path: JobPath,
  body: RunJobBody,
): Promise<Answer<RunJobAnswer> & { wake: string }> {
  const subscribe = body.subscribe === true;
  const started: StartedJob = await startJob(
    q,
    {
      ...path,
      jobType: body.job_type ?? 'inference',
      input: body.input ?? {},
      subscribe,
      trigger: null,
      lineage: [],
      models: caller.models,
    },
    hot,
  );
  const answer =
    subscribe && started.subscription_id !== null
      ? { job_id: started.job_id, subscription_id: started.subscription_id }
      : { job_id: started.job_id };
  return { statusCode: 202, body: answer, wake: started.wake };
}
