import { grants, type Grant } from '../auth/caller.js';
import type { Queryable } from '../db/database.js';
import { describeProblems, resolveFeatures } from '../domain/features.js';
import { forbidden, notFound, unprocessable } from '../domain/errors.js';
import { wakeKey } from '../lifecycle/job-wakeups.js';
import { loadJobTarget, type JobTarget } from '../repositories/job-targets.repository.js';
import { insertJob, type JobTrigger, type NewJob } from '../repositories/jobs.repository.js';
import type { GroupCommit } from '../db/group-commit.js';
import type { GuardedJob } from '../repositories/job-batch-insert.repository.js';
import { currentTraceparent } from '../observability/tracing.js';
import { JobTargetCache } from './job-target-cache.js';

export interface StartJobRequest {
  clientId: string;
  domainId: string;
  /** null for a domain-scope job (no service, no features). */
  serviceId: string | null;
  key: string;
  jobType: string;
  input: Record<string, unknown>;
  subscribe: boolean;
  trigger: JobTrigger | null;
  lineage: string[];
  /** The caller's `models` grant; the assignment's model must be in it. */
  models: Grant;
  /** -100..100; undefined takes the assignment's. */
  priority?: number | undefined;
}

/** What makes starting a job one statement: remembered targets and, embedded, group commit. */
export interface HotPath {
  targets?: JobTargetCache;
  batcher?: GroupCommit<GuardedJob, string | undefined> | undefined;
}

export interface StartedJob {
  job_id: string;
  subscription_id: string | null;
  /** Announce this once the job is committed (see JobWakeups). */
  wake: string;
}

/**
 * Starts a job through an assignment: the checks in their order (404s, then 422s) on everything
 * they need, read in one statement, then one insert. With a cache of targets, a target read
 * before is planned on at once and the insert checks that it still holds: one statement in all.
 * Used by the run-job routes and by subscriptions.
 */
export async function startJob(
  q: Queryable,
  request: StartJobRequest,
  hot: HotPath = {},
): Promise<StartedJob> {
  const cache = hot.targets;
  const { clientId, domainId, serviceId, key } = request;
  const cacheKey = JobTargetCache.key(clientId, domainId, serviceId, key);
  const remembered = cache?.get(cacheKey);
  if (remembered !== undefined) {
    const started = await tryRemembered(q, request, remembered, hot.batcher);
    if (started !== undefined) return started;
    cache!.delete(cacheKey);
  }
  const target = await loadJobTarget(q, clientId, domainId, serviceId, key);
  const job = planJob(target, request);
  if (cache !== undefined && target.version_stamp !== null) cache.set(cacheKey, target);
  return started(job, (await insertJob(q, job))!);
}

// A remembered target that fails a check, or no longer holds, answers nothing: the caller
// reads the target again, so every answer, errors included, rests on current rows.
async function tryRemembered(
  q: Queryable,
  request: StartJobRequest,
  target: JobTarget,
  batcher: GroupCommit<GuardedJob, string | undefined> | undefined,
): Promise<StartedJob | undefined> {
  let job: NewJob;
  try {
    job = planJob(target, request);
  } catch {
    return undefined;
  }
  const stamp = { serviceStamp: target.service_stamp, versionStamp: target.version_stamp! };
  // Outside a transaction, on a database with a batcher, the insert joins the next batch.
  if (batcher !== undefined && q === batcher.db && !job.subscribe) {
    const jobId = await batcher.write({ job, expect: stamp });
    return jobId === undefined ? undefined : started(job, { job_id: jobId, subscription_id: null });
  }
  const inserted = await insertJob(q, job, stamp);
  return inserted && started(job, inserted);
}

function started(
  job: NewJob,
  inserted: { job_id: string; subscription_id: string | null },
): StartedJob {
  return {
    ...inserted,
    wake: wakeKey({
      model_id: job.modelId,
      model_version: job.modelVersion,
      handler_type: job.handlerType,
    }),
  };
}

type AssignmentFields =
  | 'assignment_id'
  | 'model_id'
  | 'model_version'
  | 'config'
  | 'job_types'
  | 'features'
  | 'timeout_s'
  | 'max_attempts'
  | 'handler_type'
  | 'priority';

/** A target with an active assignment: its assignment and version fields are all present. */
export type RunnableTarget = JobTarget & { [K in AssignmentFields]: NonNullable<JobTarget[K]> };

/**
 * The checks on running a job, in the order they are made, on what was read: the tenant path exists (404), the
 * domain is active, the service has not departed, an assignment is active for the key (422),
 * the caller may use its model (403), and its version supports the job type (422).
 */
export function requireRunnableTarget(
  target: JobTarget,
  request: Pick<
    StartJobRequest,
    'clientId' | 'domainId' | 'serviceId' | 'key' | 'jobType' | 'models'
  >,
): RunnableTarget {
  const { clientId, domainId, serviceId, key } = request;
  if (!target.client_exists) throw notFound(`client "${clientId}" not found`);
  if (target.domain_status === null) {
    throw notFound(`domain "${domainId}" not found in client "${clientId}"`);
  }
  if (serviceId !== null && target.service_status === null) {
    throw notFound(`service "${serviceId}" not found in domain "${domainId}"`);
  }
  if (target.domain_status === 'inactive') {
    throw unprocessable(`domain "${domainId}" is inactive; jobs run only in active domains`);
  }
  if (target.service_status === 'departed') {
    throw unprocessable(`service "${serviceId}" has departed and receives no new jobs`);
  }
  if (!isRunnable(target)) {
    const scope =
      serviceId === null ? `domain "${domainId}"` : `service "${serviceId}" or its domain`;
    throw unprocessable(`no active assignment for key "${key}" on ${scope}`);
  }
  if (!grants(request.models, target.model_id)) {
    throw forbidden(`this token may not act on model "${target.model_id}"`);
  }
  if (!target.job_types.includes(request.jobType)) {
    throw unprocessable(
      `${target.model_id}@${target.model_version} does not support job_type ` +
        `"${request.jobType}"; it supports ${target.job_types.join(', ')}`,
    );
  }
  return target;
}

// The assignment and its version come from one left join: all present or all null.
function isRunnable(target: JobTarget): target is RunnableTarget {
  return target.assignment_id !== null && target.features !== null && target.job_types !== null;
}

/** The checks, then the job's features resolved against the version's contract. */
export function planJob(found: JobTarget, request: StartJobRequest): NewJob {
  const target = requireRunnableTarget(found, request);
  const { clientId, domainId, serviceId, key } = request;
  let features = null;
  if (serviceId !== null) {
    const resolution = resolveFeatures(target.features, target.provided_features ?? {});
    if (!resolution.ok) {
      throw unprocessable(
        `service "${serviceId}" does not satisfy the contract of ` +
          `${target.model_id}@${target.model_version}: ${describeProblems(resolution.problems)}`,
        { problems: resolution.problems },
      );
    }
    features = resolution.value;
  }
  return {
    clientId,
    domainId,
    serviceId,
    assignmentId: target.assignment_id,
    assignmentKey: key,
    modelId: target.model_id,
    modelVersion: target.model_version,
    jobType: request.jobType,
    input: request.input,
    features,
    config: target.config,
    trigger: request.trigger,
    lineage: request.lineage,
    maxAttempts: target.max_attempts,
    timeoutS: target.timeout_s,
    handlerType: target.handler_type,
    subscribe: request.subscribe,
    priority: request.priority ?? target.priority,
    // The request's span (run-job, a completion firing subscriptions, a jobs/batch request):
    // dispatch, later and maybe elsewhere, continues its trace. Null with tracing off.
    traceparent: currentTraceparent(),
  };
}
