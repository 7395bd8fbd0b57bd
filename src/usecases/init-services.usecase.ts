import type { Caller } from '../auth/caller.js';
import type { Queryable } from '../db/database.js';
import type { Answer } from '../http/idempotency.js';
import { loadJobTarget } from '../repositories/job-targets.repository.js';
import { insertInitJobs } from '../repositories/jobs.repository.js';
import { requireRunnableTarget } from './start-job.js';
import { wakeKey } from '../dispatch/job-wakeups.js';

/**
 * Services init (seed 003): one inference job per non-departed service through the domain's
 * active default assignment, with each service's stored resolved_features and empty input.
 * One read for the checks, then one multi-row insert; no features change.
 */
export async function initServices(
  q: Queryable,
  caller: Caller,
  clientId: string,
  domainId: string,
): Promise<Answer<{ dispatched_services: string[] }> & { wake: string }> {
  const request = { clientId, domainId, serviceId: null, key: 'default', jobType: 'inference' };
  const target = requireRunnableTarget(
    await loadJobTarget(q, clientId, domainId, null, request.key),
    { ...request, models: caller.models },
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
  });
  return { statusCode: 202, body: { dispatched_services: dispatched }, wake: wakeKey(target) };
}
