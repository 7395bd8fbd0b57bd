import type { Queryable } from '../db/database.js';
import { targetIsCurrent } from './job-targets.repository.js';
import { laneKey, laneSeq, laneStarts } from './lane-sql.js';
import type { NewJob, TargetStamp } from './jobs.repository.js';
import { json } from './rows.js';

export interface GuardedJob {
  job: NewJob;
  expect: TargetStamp;
}

// One row per job; `ord` ties each answer back to its request.
const RECORD = `ord int, client_id text, domain_id text, service_id text, assignment_id uuid,
  assignment_key text, model_id text, model_version text, job_type text, input jsonb,
  features jsonb, config jsonb, trigger jsonb, lineage jsonb, max_attempts int, timeout_s int,
  handler_type text, priority smallint, service_stamp text, version_stamp text`;

// Ids are drawn in a materialised CTE, so the answer can pair each id with its `ord` (an
// insert's RETURNING sees only the inserted row, which has no `ord`).
const INSERT_JOBS_IF_TARGETS_CURRENT = `
  with r as (select * from jsonb_to_recordset($1::jsonb) as r(${RECORD})),
  ok as materialized (
    select r.*, pie_job_id(nextval('pie_job_number')) as job_id, ${laneKey('r')} as lane_key
    from r
    where ${targetIsCurrent({
      client: 'r.client_id',
      domain: 'r.domain_id',
      service: 'r.service_id',
      assignmentId: 'r.assignment_id',
      key: 'r.assignment_key',
      modelId: 'r.model_id',
      modelVersion: 'r.model_version',
      serviceStamp: 'r.service_stamp',
      versionStamp: 'r.version_stamp',
    })}
    order by r.ord
  ),
  ${laneStarts('ok')},
  inserted as (
    insert into jobs (job_id, client_id, domain_id, service_id, assignment_id, assignment_key,
      model_id, model_version, job_type, input, features, config, trigger, lineage,
      max_attempts, deadline_at, handler_type, priority, lane_seq)
    select job_id, client_id, domain_id, service_id, assignment_id, assignment_key, model_id,
      model_version, job_type, input, features, config, trigger, lineage, max_attempts,
      now() + make_interval(secs => timeout_s), handler_type, priority, ${laneSeq('ord')}
    from ok join lanes using (lane_key)
  )
  select ord, job_id from ok`;

/**
 * Inserts many queued jobs (no subscriptions) in one statement, each only if the target it was
 * planned on is still current: the same rule as `insertJob` with `expect`, for a batch. Answers
 * in the order given: the job's id, or undefined where its target no longer holds.
 */
export async function insertJobsIfTargetsCurrent(
  q: Queryable,
  jobs: readonly GuardedJob[],
): Promise<(string | undefined)[]> {
  const records = jobs.map(({ job, expect }, ord) => ({
    ord,
    client_id: job.clientId,
    domain_id: job.domainId,
    service_id: job.serviceId,
    assignment_id: job.assignmentId,
    assignment_key: job.assignmentKey,
    model_id: job.modelId,
    model_version: job.modelVersion,
    job_type: job.jobType,
    input: job.input,
    features: job.features,
    config: job.config,
    trigger: job.trigger,
    lineage: job.lineage,
    max_attempts: job.maxAttempts,
    timeout_s: job.timeoutS,
    handler_type: job.handlerType,
    priority: job.priority,
    service_stamp: expect.serviceStamp,
    version_stamp: expect.versionStamp,
  }));
  const { rows } = await q.query<{ ord: number; job_id: string }>(INSERT_JOBS_IF_TARGETS_CURRENT, [
    json(records),
  ]);
  const ids: (string | undefined)[] = jobs.map(() => undefined);
  for (const row of rows) ids[row.ord] = row.job_id;
  return ids;
}
