import type { Grant } from '../auth/caller.js';
import type { Queryable } from '../db/database.js';
import type { HandlerType } from '../domain/handlers.js';
import type { JobStatus } from '../domain/job-status.js';
import { selectionWhere, type JobSelection } from '../repositories/job-selection.js';
import { JOB_COLUMNS, toJob, type Job, type JobRow } from '../repositories/jobs.repository.js';
import type { CompletionRecord } from '../repositories/job-completion.repository.js';
import { jobFiresSubscription } from '../repositories/subscriptions.repository.js';
import { json } from '../repositories/rows.js';
import type { CancelledAttempt, EmitJobEvent, JobEvent } from './job-events.js';
import { MAX_ATTEMPT } from './attempt.js';
import { startsFrom } from './transition-sql.js';

/**
 * Records a handler's completion of a job its caller has locked and checked: the final
 * status, its output or error, and the answer given (replayed to a repeat of the same
 * completion). False when the job was no longer open.
 */
export async function complete(
  q: Queryable,
  emit: EmitJobEvent,
  job: Pick<Job, 'client_id' | 'job_id' | 'job_type'>,
  completion: CompletionRecord,
): Promise<boolean> {
  const { status, output, error } = completion.request;
  const { rowCount } = await q.query(
    `update jobs
     set status = $3, output = $4::jsonb, error = $5::jsonb, completion = $6::jsonb,
         finished_at = now(), updated_at = now(), locked_by = null, lease_expires_at = null
     where client_id = $1 and job_id = $2 and ${startsFrom('complete')}`,
    [
      job.client_id,
      job.job_id,
      status,
      output === null ? null : json(output),
      error === null ? null : json(error),
      json(completion),
    ],
  );
  if (rowCount > 0) emit({ type: 'finished', jobType: job.job_type, status });
  return rowCount > 0;
}

/** A completion as reported: the job, the version it ran on, who reports it and what. */
export interface ReportedCompletion {
  jobId: string;
  modelId: string;
  modelVersion: string;
  /** The clients the reporter may act on. */
  clients: Grant;
  /** The attempts the reporter names; each must be the job's current one. */
  attempts: readonly number[];
  /** What is recorded, the answer included: `triggered_events` is empty on this path. */
  completion: CompletionRecord;
}

/** What the caller needs of a job `completeIfPlain` completed. */
export interface PlainlyCompleted {
  client_id: string;
  job_type: string;
  batch_id: string | null;
  traceparent: string | null;
}

/**
 * The common completion in one statement, where the locked path takes five round trips
 * (begin, lock, subscriptions, update, commit): the job is open and was never completed, is
 * of the version and a client the reporter names, is at every attempt named, and its outcome
 * fires no subscription. Undefined when any of that does not hold; the caller then takes the
 * locked path, which says why or fires the subscriptions. A concurrent duplicate waits for the
 * update's row lock, and PostgreSQL then checks the row again: it finds the first completion,
 * matches nothing, and the duplicate goes on to replay it.
 */
export async function completeIfPlain(
  q: Queryable,
  emit: EmitJobEvent,
  reported: ReportedCompletion,
): Promise<PlainlyCompleted | undefined> {
  // An attempt past MAX_ATTEMPT would fail the int[] cast; the locked path calls it stale.
  if (reported.attempts.some((attempt) => attempt > MAX_ATTEMPT)) return undefined;
  const { status, output, error } = reported.completion.request;
  const { rows } = await q.query<PlainlyCompleted>(
    `update jobs j
     set status = $3, output = $4::jsonb, error = $5::jsonb, completion = $6::jsonb,
         finished_at = now(), updated_at = now(), locked_by = null, lease_expires_at = null
     where j.job_id = $1 and j.model_id = $7 and j.model_version = $8
       and ($2::text[] is null or j.client_id = any($2::text[]))
       and j.attempt = all($9::int[])
       and j.completion is null and ${startsFrom('complete', 'j')}
       and not ($3 = 'success' and j.job_type = 'inference'
                and ${jobFiresSubscription('j')})
     returning j.client_id, j.job_type, j.batch_id, j.traceparent`,
    [
      reported.jobId,
      reported.clients === '*' ? null : reported.clients,
      status,
      output === null ? null : json(output),
      error === null ? null : json(error),
      json(reported.completion),
      reported.modelId,
      reported.modelVersion,
      reported.attempts,
    ],
  );
  const job = rows[0];
  if (job !== undefined) emit({ type: 'finished', jobType: job.job_type, status });
  return job;
}

/**
 * Records many handlers' completions of jobs the caller has locked and checked, in one
 * statement: each row as `complete` would write it. Answers the ids of the jobs it completed
 * (all of them, while the locks hold).
 */
export async function completeMany(
  q: Queryable,
  emit: EmitJobEvent,
  jobs: { job: Pick<Job, 'client_id' | 'job_id' | 'job_type'>; completion: CompletionRecord }[],
): Promise<Set<string>> {
  if (jobs.length === 0) return new Set();
  const rows = jobs.map(({ job, completion }) => ({
    client_id: job.client_id,
    job_id: job.job_id,
    status: completion.request.status,
    output: completion.request.output,
    error: completion.request.error,
    completion,
  }));
  const { rows: done } = await q.query<{ job_id: string }>(
    `update jobs j
     set status = c.status, output = c.output, error = c.error, completion = c.completion,
         finished_at = now(), updated_at = now(), locked_by = null, lease_expires_at = null
     from jsonb_to_recordset($1::jsonb)
       as c(client_id text, job_id text, status text, output jsonb, error jsonb, completion jsonb)
     where j.client_id = c.client_id and j.job_id = c.job_id and ${startsFrom('complete', 'j')}
     returning j.job_id`,
    [json(rows)],
  );
  const completed = new Set(done.map((row) => row.job_id));
  for (const { job, completion } of jobs) {
    if (completed.has(job.job_id)) {
      emit({ type: 'finished', jobType: job.job_type, status: completion.request.status });
    }
  }
  return completed;
}

// Cancelling must say what it cut short (whether a handler had the job, and who held it),
// which only the row as it was before the update knows: `returning` shows the new values. So
// each statement locks and reads the rows first (`was_*`), then updates them, still in one
// statement.
const CANCEL_SET = `status = 'cancelled', finished_at = now(), updated_at = now(),
  locked_by = null, lease_expires_at = null`;
const CANCEL_RETURNING = `${JOB_COLUMNS}, handler_type, handler_ref, was_status, was_leased`;

interface CancelledRow extends JobRow {
  handler_type: HandlerType;
  handler_ref: string | null;
  was_status: JobStatus;
  was_leased: boolean;
}

/** The job as answered, and the event that tells metrics and handlers of its cancel. */
function cancelledJob(row: CancelledRow): { job: Job; event: JobEvent } {
  const { handler_type, handler_ref, was_status, was_leased, ...jobRow } = row;
  const job = toJob(jobRow);
  if (was_status === 'queued') return { job, event: { type: 'cancelled', jobType: job.job_type } };
  const attempt: CancelledAttempt = {
    job_id: job.job_id,
    client_id: job.client_id,
    model_id: job.model_id,
    model_version: job.model_version,
    handler_type,
    handler_ref,
    attempt: job.attempt,
    leased: was_leased,
  };
  return { job, event: { type: 'cancelled', jobType: job.job_type, attempt } };
}

/** Cancels a job that is not final; undefined when there was no such open job. */
export async function cancel(
  q: Queryable,
  emit: EmitJobEvent,
  clientId: string,
  domainId: string,
  jobId: string,
): Promise<Job | undefined> {
  const { rows } = await q.query<CancelledRow>(
    `with was as (
       select client_id as was_client, job_id as was_job, status as was_status,
              locked_by is not null as was_leased
       from jobs
       where client_id = $1 and domain_id = $2 and job_id = $3 and ${startsFrom('cancel')}
       for update
     )
     update jobs set ${CANCEL_SET}
     from was
     where client_id = was_client and job_id = was_job and ${startsFrom('cancel')}
     returning ${CANCEL_RETURNING}`,
    [clientId, domainId, jobId],
  );
  if (rows[0] === undefined) return undefined;
  const { job, event } = cancelledJob(rows[0]);
  emit(event);
  return job;
}

/**
 * Cancels every open job of the domain that `selection` picks (oldest first), in one
 * statement; answers the cancelled jobs. Rows are locked in a fixed order before they change,
 * so two bulk cancels, or a bulk cancel and a claim, wait for each other rather than deadlock.
 */
export async function cancelSelected(
  q: Queryable,
  emit: EmitJobEvent,
  clientId: string,
  domainId: string,
  selection: JobSelection,
  models: Grant,
): Promise<Job[]> {
  const values: unknown[] = [clientId, domainId];
  const where = selectionWhere(selection, models, values);
  values.push(selection.limit);
  const { rows } = await q.query<CancelledRow>(
    `with picked as (
       select j.client_id as picked_client, j.job_id as picked_job, j.status as was_status,
              j.locked_by is not null as was_leased
       from jobs j
       where j.client_id = $1 and j.domain_id = $2 and ${startsFrom('cancel', 'j')} and ${where}
       order by j.created_at, j.job_id
       limit $${values.length}
       for update
     )
     update jobs set ${CANCEL_SET}
     from picked
     where client_id = picked_client and job_id = picked_job and ${startsFrom('cancel')}
     returning ${CANCEL_RETURNING}`,
    values,
  );
  return rows.map((row) => {
    const { job, event } = cancelledJob(row);
    emit(event);
    return job;
  });
}
