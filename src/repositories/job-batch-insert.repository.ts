import type { Queryable } from '../db/database.js';
import {
  domainIsActive,
  serviceAndAssignmentAreCurrent,
  versionIsUnchanged,
} from './job-targets.repository.js';
import { recordBatch } from './batches.repository.js';
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
  handler_type text, priority smallint, service_stamp text, version_stamp text, traceparent text`;

/**
 * The rows of a batch mostly share a few targets: each distinct target (grouped by what its
 * check reads; a service and its stamp are null at domain scope, and grouping keeps nulls
 * together) is checked once, and its rows go in when it holds. Checked per row, a batch of 50
 * jobs of one target made 200 lookups: on PGlite 326 → 260 µs a job (BENCHMARKS.md,
 * "Optimisation 19"). A batch's targets mostly share a domain and a model version too, though
 * not a service (run-job spread over many services): the domains and versions are checked
 * once each for the statement (`held_domains`, `held_versions`), and only the service and the
 * assignment per target. Per target, they were about a tenth of the statement on PGlite
 * (optimisation 25). Each is a lookup per distinct value (`domainIsActive`,
 * `versionIsUnchanged`): written as an IN, it became a semi-join that scanned every model
 * version, a cost growing with the registry.
 */
const TARGET = `client_id, domain_id, service_id, assignment_id, assignment_key, model_id,
  model_version, service_stamp, version_stamp`;

/**
 * The insert of many guarded jobs. Ids are drawn in a materialised CTE, so the answer can pair
 * each id with its `ord` (an insert's RETURNING sees only the inserted row, which has no `ord`).
 * `batch`: all or none (nothing is inserted unless every target is current), the jobs making
 * one batch of that kind and key (`$2`, `$3`), recorded by `recordBatch`.
 */
function insertGuardedSql(batch?: { kind: string; key: string }): string {
  return `
  with r as (select * from jsonb_to_recordset($1::jsonb) as r(${RECORD})),
  targets as materialized (select ${TARGET}, array_agg(ord) as ords from r group by ${TARGET}),
  held_domains as materialized (
    select client_id, domain_id from (select distinct client_id, domain_id from targets) t
    where ${domainIsActive({ client: 't.client_id', domain: 't.domain_id' })}
  ),
  held_versions as materialized (
    select model_id, model_version, version_stamp
    from (select distinct model_id, model_version, version_stamp from targets) t
    where ${versionIsUnchanged({ modelId: 't.model_id', modelVersion: 't.model_version', versionStamp: 't.version_stamp' })}
  ),
  ok as materialized (
    select r.*, pie_job_id(nextval('pie_job_number')) as job_id, ${laneKey('r')} as lane_key
    from r
    where r.ord in (
      select unnest(t.ords) from targets t
      where (t.client_id, t.domain_id) in (select client_id, domain_id from held_domains)
        and (t.model_id, t.model_version, t.version_stamp) in (select * from held_versions)
        and ${serviceAndAssignmentAreCurrent({
          client: 't.client_id',
          domain: 't.domain_id',
          service: 't.service_id',
          assignmentId: 't.assignment_id',
          key: 't.assignment_key',
          serviceStamp: 't.service_stamp',
        })}
    )
    order by r.ord
  ),
  ${laneStarts('ok')},
  ${batch === undefined ? '' : `batch as materialized (select gen_random_uuid() as batch_id),`}
  inserted as (
    insert into jobs (job_id, client_id, domain_id, service_id, assignment_id, assignment_key,
      model_id, model_version, job_type, input, features, config, trigger, lineage,
      max_attempts, deadline_at, handler_type, priority, traceparent,
      lane_seq${batch ? ', batch_id' : ''})
    select job_id, client_id, domain_id, service_id, assignment_id, assignment_key, model_id,
      model_version, job_type, input, features, config, trigger, lineage, max_attempts,
      now() + make_interval(secs => timeout_s), handler_type, priority, traceparent,
      ${laneSeq('ord')}
      ${batch ? ', batch.batch_id' : ''}
    from ok join lanes using (lane_key)${batch ? ', batch' : ''}
    ${batch ? 'where (select count(*) from ok) = (select count(*) from r)' : ''}
    returning job_id, client_id, domain_id${batch ? ', batch_id, model_id, model_version' : ''}
  )${
    batch === undefined
      ? ''
      : `,
  ${recordBatch({ client: '(select client_id from r limit 1)', domain: '(select domain_id from r limit 1)', kind: batch.kind, key: batch.key })}`
  }
  select ok.ord, ok.job_id${batch ? ', (select batch_id from batch) as batch_id' : ''},
    exists (select 1 from inserted) as inserted
  from ok`;
}

const INSERT_JOBS_IF_TARGETS_CURRENT = insertGuardedSql();
const INSERT_BATCH_IF_TARGETS_CURRENT = insertGuardedSql({ kind: '$2', key: '$3' });

/**
 * Inserts many queued jobs (no subscriptions) in one statement, each only if the target it was
 * planned on is still current: the same rule as `insertJob` with `expect`, for a batch. Answers
 * in the order given: the job's id, or undefined where its target no longer holds.
 */
export async function insertJobsIfTargetsCurrent(
  q: Queryable,
  jobs: readonly GuardedJob[],
): Promise<(string | undefined)[]> {
  const { rows } = await q.query<{ ord: number; job_id: string }>(INSERT_JOBS_IF_TARGETS_CURRENT, [
    json(records(jobs)),
  ]);
  const ids: (string | undefined)[] = jobs.map(() => undefined);
  for (const row of rows) ids[row.ord] = row.job_id;
  return ids;
}

/**
 * Inserts the jobs of one batch (of one client and domain, through one assignment key) in one
 * statement, all or none: undefined when a target was no longer current, and then nothing is
 * inserted. Answers the batch and the jobs' ids in the order given.
 */
export async function insertBatchIfTargetsCurrent(
  q: Queryable,
  jobs: readonly GuardedJob[],
  batch: { kind: 'bulk'; key: string },
): Promise<{ batchId: string; jobIds: string[] } | undefined> {
  const { rows } = await q.query<{
    ord: number;
    job_id: string;
    batch_id: string;
    inserted: boolean;
  }>(INSERT_BATCH_IF_TARGETS_CURRENT, [json(records(jobs)), batch.kind, batch.key]);
  if (rows.length !== jobs.length || !rows.every((row) => row.inserted)) return undefined;
  const jobIds: string[] = jobs.map(() => '');
  for (const row of rows) jobIds[row.ord] = row.job_id;
  return { batchId: rows[0]!.batch_id, jobIds };
}

function records(jobs: readonly GuardedJob[]) {
  return jobs.map(({ job, expect }, ord) => ({
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
    traceparent: job.traceparent,
  }));
}
