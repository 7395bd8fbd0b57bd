import type { Queryable } from '../db/database.js';
import type { FeatureValues } from '../domain/features.js';
import type { HandlerType } from '../domain/handlers.js';
import type { JobStatus } from '../domain/job-status.js';
import type { JobTrigger } from '../domain/job-trigger.js';
import type { PageRequest } from '../domain/paging.js';
import { targetIsCurrent } from './job-targets.repository.js';
import { recordBatch } from './batches.repository.js';
import { iso, isoOrNull, json } from './rows.js';
import { SqlConditions } from './sql-conditions.js';

export type { JobTrigger };

export interface Job {
  job_id: string;
  client_id: string;
  domain_id: string;
  service_id: string | null;
  assignment_id: string;
  assignment_key: string;
  model_id: string;
  model_version: string;
  job_type: string;
  status: JobStatus;
  input: Record<string, unknown>;
  features: FeatureValues | null;
  config: Record<string, unknown>;
  trigger: JobTrigger | null;
  lineage: string[];
  priority: number;
  /** The failed or cancelled job this one was started again from (redrive). */
  retry_of: string | null;
  /** The batch it was started in (services init, `jobs/batch`, a schedule's tick). */
  batch_id: string | null;
  attempt: number;
  max_attempts: number;
  /** What the handler returned: a JSON object, on success. */
  output: Record<string, unknown> | null;
  /** Why it failed: PIE's own errors have `code` and `message`; a handler's are as it sent them. */
  error: { code?: string; message?: string; [detail: string]: unknown } | null;
  deadline: string;
  created_at: string;
  updated_at: string;
  dispatched_at: string | null;
  finished_at: string | null;
}

export interface JobRow extends Omit<
  Job,
  'deadline' | 'created_at' | 'updated_at' | 'dispatched_at' | 'finished_at'
> {
  deadline_at: Date;
  created_at: Date;
  updated_at: Date;
  dispatched_at: Date | null;
  finished_at: Date | null;
}

// A job gathering a debounced subscription's completions composes its trigger from them; the
// test is written out here so that other jobs never call the function (a SQL function with a
// subquery is not inlined: called for each row of a list, it cost a list page milliseconds).
export const TRIGGER_COLUMN = (alias = '') =>
  `case when ${alias}debounce_subscription_id is null then ${alias}trigger
   else pie_job_trigger(${alias}client_id, ${alias}job_id, ${alias}debounce_subscription_id,
     ${alias}trigger) end as trigger`;

export const JOB_COLUMNS = `job_id, client_id, domain_id, service_id, assignment_id, assignment_key,
  model_id, model_version, job_type, status, input, features, config, ${TRIGGER_COLUMN()},
  lineage, priority,
  retry_of, batch_id, attempt, max_attempts, output, error, deadline_at, created_at, updated_at,
  dispatched_at, finished_at`;

export function toJob(row: JobRow): Job {
  const { deadline_at, created_at, updated_at, dispatched_at, finished_at, ...rest } = row;
  return {
    ...rest,
    deadline: iso(deadline_at),
    created_at: iso(created_at),
    updated_at: iso(updated_at),
    dispatched_at: isoOrNull(dispatched_at),
    finished_at: isoOrNull(finished_at),
  };
}

/** Everything a new job row needs, decided by the start-job use case. */
export interface NewJob {
  clientId: string;
  domainId: string;
  serviceId: string | null;
  assignmentId: string;
  assignmentKey: string;
  modelId: string;
  modelVersion: string;
  jobType: string;
  input: Record<string, unknown>;
  features: FeatureValues | null;
  config: Record<string, unknown>;
  trigger: JobTrigger | null;
  lineage: string[];
  maxAttempts: number;
  timeoutS: number;
  handlerType: HandlerType;
  /** `subscribe: true`: also subscribe the assignment to this model's completed inference. */
  subscribe: boolean;
  /** -100..100; higher is claimed first. */
  priority: number;
  /** The W3C trace context of the work that started it; null when tracing is off. */
  traceparent: string | null;
}

/** What a remembered job target looked like, for the insert to check it still holds. */
export interface TargetStamp {
  serviceStamp: string | null;
  versionStamp: string;
}

const TARGET_IS_CURRENT = targetIsCurrent({
  client: '$1',
  domain: '$2',
  service: '$3',
  assignmentId: '$4::uuid',
  key: '$5',
  modelId: '$6',
  modelVersion: '$7',
  serviceStamp: '$20',
  versionStamp: '$21',
});

function insertJobSql(guard: string): string {
  return `with job as (
       insert into jobs (client_id, domain_id, service_id, assignment_id, assignment_key,
         model_id, model_version, job_type, input, features, config, trigger, lineage,
         max_attempts, deadline_at, handler_type, priority, lane_seq, traceparent)
       select $1::text, $2::text, $3::text, $4::uuid, $5::text, $6::text, $7::text, $8::text,
         $9::jsonb, $10::jsonb, $11::jsonb, $12::jsonb, $13::jsonb, $14::int,
         now() + make_interval(secs => $15::int), $17::text, $18::smallint,
         pie_next_lane_seq($1, $2, $17, $6, $7, $18::smallint), $19::text
       where ${guard}
       returning job_id
     ),
     existing as (
       select s.subscription_id from subscriptions s
       where $16 and s.client_id = $1 and s.domain_id = $2 and s.status = 'active'
         and s.event = 'inference_complete' and s.source_model_id = $6
         and s.source_model_version is null and s.source_service_id is not distinct from $3
         and s.action_assignment_key = $5 and s.action_service_id is not distinct from $3
         and s.action_job_type = 'training' and s.input = $9::jsonb
       limit 1
     ),
     subscription as (
       insert into subscriptions (client_id, domain_id, source_model_id, source_service_id,
         action_assignment_key, action_service_id, action_job_type, input, created_by_job_id)
       select $1, $2, $6, $3, $5, $3, 'training', $9::jsonb, job.job_id from job
       where $16 and not exists (select 1 from existing)
       returning subscription_id
     )
     select job.job_id,
       coalesce((select subscription_id from subscription),
                (select subscription_id from existing))::text as subscription_id
     from job`;
}

const INSERT_JOB = insertJobSql('true');
const INSERT_JOB_IF_TARGET_CURRENT = insertJobSql(TARGET_IS_CURRENT);

/**
 * Inserts a queued job, and with `subscribe` its retraining subscription (reusing an identical
 * active one), in one statement: the hot path of the service is this one round trip. With
 * `expect`, it inserts only if the target the job was planned on is still current, and returns
 * undefined when it is not (nothing was written; read the target again).
 */
export async function insertJob(
  q: Queryable,
  job: NewJob,
  expect?: TargetStamp,
): Promise<{ job_id: string; subscription_id: string | null } | undefined> {
  const values: unknown[] = [
    job.clientId,
    job.domainId,
    job.serviceId,
    job.assignmentId,
    job.assignmentKey,
    job.modelId,
    job.modelVersion,
    job.jobType,
    json(job.input),
    job.features === null ? null : json(job.features),
    json(job.config),
    job.trigger === null ? null : json(job.trigger),
    json(job.lineage),
    job.maxAttempts,
    job.timeoutS,
    job.subscribe,
    job.handlerType,
    job.priority,
    job.traceparent,
  ];
  if (expect !== undefined) values.push(expect.serviceStamp, expect.versionStamp);
  const { rows } = await q.query<{ job_id: string; subscription_id: string | null }>(
    expect === undefined ? INSERT_JOB : INSERT_JOB_IF_TARGET_CURRENT,
    values,
  );
  return rows[0];
}

/**
 * Services init: one inference job per non-departed service, and the batch they make (none
 * when no service is left), in one statement. Answers the services in order and the batch.
 */
export async function insertInitJobs(
  q: Queryable,
  init: {
    kind: 'init' | 'schedule';
    clientId: string;
    domainId: string;
    assignmentId: string;
    modelId: string;
    modelVersion: string;
    config: Record<string, unknown>;
    maxAttempts: number;
    timeoutS: number;
    handlerType: HandlerType;
    priority: number;
    /** Stored with every job of the init: the trace of the request or tick that made them. */
    traceparent: string | null;
  },
): Promise<{ services: string[]; batchId: string | null }> {
  const { rows } = await q.query<{ services: string[]; batch_id: string | null }>(
    // The domain's jobs take consecutive places in its lane, after what it already has queued.
    // Materialized: inlined, the lane's next number would be looked up once per service.
    //
    // The rows go in in descending job id order, and take their places in the lane in that
    // order too, so most indexes get their entries one after another: four of the lists'
    // (status, type, key and batch: creation time, shared by all, then job id, both
    // descending) and the lane's. The primary key and `jobs_by_domain` (job id ascending) take
    // theirs backwards. In service order, each would land at a random place in six of them:
    // over 1,000,000 services those outgrow memory, and each insert reads and writes another
    // page (BENCHMARKS.md, optimisations 18 and 20). Ids are drawn as the column's default
    // draws them.
    `with lane as materialized (select pie_next_lane_seq($1, $2, $9, $4, $5, $10::smallint) as first),
     batch as materialized (select gen_random_uuid() as batch_id),
     inserted as (
       insert into jobs (job_id, client_id, domain_id, service_id, assignment_id, assignment_key,
         model_id, model_version, job_type, input, features, config, max_attempts, deadline_at,
         handler_type, priority, lane_seq, batch_id, traceparent)
       select s.job_id, $1, $2, s.service_id, $3, 'default', $4, $5, 'inference', '{}',
         s.resolved_features, $6::jsonb, $7, now() + make_interval(secs => $8), $9, $10,
         lane.first + row_number() over (order by s.job_id desc) - 1, batch.batch_id, $12::text
       from (
         select pie_job_id(nextval('pie_job_number')) as job_id, service_id, resolved_features
         from services
         where client_id = $1 and domain_id = $2 and status = 'active'
       ) s, lane, batch
       order by s.job_id desc
       returning job_id, service_id, batch_id, model_id, model_version
     ),
     ${recordBatch({ client: '$1', domain: '$2', kind: '$11', key: "'default'" })}
     -- One row: the services as one array, the batch once (none when no job went in). A row
     -- per service made 1,000,000 objects with the batch's id repeated in each (BENCHMARKS.md,
     -- optimisation 22).
     select coalesce(array_agg(service_id order by service_id), '{}') as services,
       (select batch_id from inserted limit 1) as batch_id
     from inserted`,
    [
      init.clientId,
      init.domainId,
      init.assignmentId,
      init.modelId,
      init.modelVersion,
      json(init.config),
      init.maxAttempts,
      init.timeoutS,
      init.handlerType,
      init.priority,
      init.kind,
      init.traceparent,
    ],
  );
  // An aggregate without grouping: always exactly one row.
  const { services, batch_id } = rows[0]!;
  return { services, batchId: batch_id };
}

export async function findJob(
  q: Queryable,
  clientId: string,
  domainId: string,
  jobId: string,
): Promise<Job | undefined> {
  const { rows } = await q.query<JobRow>(
    `select ${JOB_COLUMNS} from jobs where client_id = $1 and domain_id = $2 and job_id = $3`,
    [clientId, domainId, jobId],
  );
  return rows[0] && toJob(rows[0]);
}

/** The client a job belongs to, by job id alone (for checking a token's grant). */
export async function findJobClient(q: Queryable, jobId: string): Promise<string | undefined> {
  const { rows } = await q.query<{ client_id: string }>(
    'select client_id from jobs where job_id = $1',
    [jobId],
  );
  return rows[0]?.client_id;
}

/** The status and attempt of each of these jobs (by job id alone); missing ones are gone. */
export async function findAttempts(
  q: Queryable,
  jobIds: readonly string[],
): Promise<{ job_id: string; status: JobStatus; attempt: number }[]> {
  const { rows } = await q.query<{ job_id: string; status: JobStatus; attempt: number }>(
    'select job_id, status, attempt from jobs where job_id = any($1::text[])',
    [jobIds],
  );
  return rows;
}

export interface JobFilter {
  status?: JobStatus | undefined;
  serviceId?: string | undefined;
  jobType?: string | undefined;
  assignmentKey?: string | undefined;
  batchId?: string | undefined;
  /** Jobs retried from, or started by a subscription of, this job (`jobs_by_parent`). */
  parentJobId?: string | undefined;
}

/** A job's parent as migration 000016's `jobs_by_parent` indexes it, written out the same. */
const PARENT_JOB_ID = `coalesce(retry_of, trigger->>'job_id', trigger->'job_ids'->>0)`;

/**
 * Newest first; the cursor is (created_at, job_id) of the last job of the previous page.
 *
 * Only the filters given become conditions (`SqlConditions`), and each has an index in the
 * list's order (migrations 000002 and 000007), so a page never walks the domain's other jobs.
 */
export async function listJobs(
  q: Queryable,
  clientId: string,
  domainId: string,
  filter: JobFilter,
  page: PageRequest,
): Promise<Job[]> {
  const values: unknown[] = [clientId, domainId];
  const where = new SqlConditions(values, ['client_id = $1', 'domain_id = $2'])
    .add(filter.status, (p) => `status = ${p}`)
    .add(filter.serviceId, (p) => `service_id = ${p}`)
    .add(filter.jobType, (p) => `job_type = ${p}`)
    .add(filter.assignmentKey, (p) => `assignment_key = ${p}`)
    .add(filter.batchId, (p) => `batch_id = ${p}::uuid`)
    .add(filter.parentJobId, (p) => `${PARENT_JOB_ID} = ${p}`);
  if (page.after !== undefined) {
    const [createdAt, jobId] = page.after;
    where.add(
      createdAt,
      (p) => `(created_at, job_id) < (${p}::timestamptz, ${where.bind(jobId)}::text)`,
    );
  }
  const { rows } = await q.query<JobRow>(
    `select ${JOB_COLUMNS} from jobs
     where ${where.toString()}
     order by created_at desc, job_id desc
     limit ${where.bind(page.limit + 1)}`,
    values,
  );
  return rows.map(toJob);
}
