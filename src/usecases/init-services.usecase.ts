import { grants, type Caller } from '../auth/caller.js';
import type { Queryable } from '../db/database.js';
import { forbidden, notFound, unprocessable } from '../http/errors.js';
import type { Answer } from '../http/idempotency.js';
import { loadJobTarget } from '../repositories/job-targets.repository.js';
import { insertInitJobs } from '../repositories/jobs.repository.js';

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
): Promise<Answer<{ dispatched_services: string[] }>> {
  const target = await loadJobTarget(q, clientId, domainId, null, 'default');
  if (!target.client_exists) throw notFound(`client "${clientId}" not found`);
  if (target.domain_status === null) {
    throw notFound(`domain "${domainId}" not found in client "${clientId}"`);
  }
  if (target.domain_status === 'inactive') {
    throw unprocessable(`domain "${domainId}" is inactive; jobs run only in active domains`);
  }
  if (
    target.assignment_id === null ||
    target.model_id === null ||
    target.model_version === null ||
    target.job_types === null ||
    target.timeout_s === null ||
    target.max_attempts === null
  ) {
    throw unprocessable(`domain "${domainId}" has no active default assignment`);
  }
  if (!grants(caller.models, target.model_id)) {
    throw forbidden(`this token may not act on model "${target.model_id}"`);
  }
  if (!target.job_types.includes('inference')) {
    throw unprocessable(
      `${target.model_id}@${target.model_version} does not support inference jobs`,
    );
  }
  const dispatched = await insertInitJobs(q, {
    clientId,
    domainId,
    assignmentId: target.assignment_id,
    modelId: target.model_id,
    modelVersion: target.model_version,
    config: target.config ?? {},
    maxAttempts: target.max_attempts,
    timeoutS: target.timeout_s,
  });
  return { statusCode: 202, body: { dispatched_services: dispatched } };
}
