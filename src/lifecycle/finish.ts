import type { Grant } from '../auth/caller.js';
import type { Queryable } from '../db/database.js';
import { selectionWhere, type JobSelection } from '../repositories/job-selection.js';
import {
  JOB_COLUMNS,
  toJob,
  type CompletionRecord,
  type Job,
  type JobRow,
} from '../repositories/jobs.repository.js';
import { json } from '../repositories/rows.js';
import type { EmitJobEvent } from './job-events.js';
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

/** Cancels a job that is not final; undefined when there was no such open job. */
export async function cancel(
  q: Queryable,
  emit: EmitJobEvent,
  clientId: string,
  domainId: string,
  jobId: string,
): Promise<Job | undefined> {
  const { rows } = await q.query<JobRow>(
    `update jobs
     set status = 'cancelled', finished_at = now(), updated_at = now(),
         locked_by = null, lease_expires_at = null
     where client_id = $1 and domain_id = $2 and job_id = $3 and ${startsFrom('cancel')}
     returning ${JOB_COLUMNS}`,
    [clientId, domainId, jobId],
  );
  const job = rows[0] && toJob(rows[0]);
  if (job !== undefined) emit({ type: 'cancelled', jobType: job.job_type });
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
  const { rows } = await q.query<JobRow>(
    `with picked as (
       select j.client_id as picked_client, j.job_id as picked_job from jobs j
       where j.client_id = $1 and j.domain_id = $2 and ${startsFrom('cancel', 'j')} and ${where}
       order by j.created_at, j.job_id
       limit $${values.length}
       for update
     )
     update jobs
     set status = 'cancelled', finished_at = now(), updated_at = now(),
         locked_by = null, lease_expires_at = null
     from picked
     where client_id = picked_client and job_id = picked_job and ${startsFrom('cancel')}
     returning ${JOB_COLUMNS}`,
    values,
  );
  const cancelled = rows.map(toJob);
  for (const job of cancelled) emit({ type: 'cancelled', jobType: job.job_type });
  return cancelled;
}
