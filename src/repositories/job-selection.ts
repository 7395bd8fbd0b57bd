import type { Grant } from '../auth/caller.js';
import { json } from './rows.js';
import { SqlConditions } from './sql-conditions.js';

/** Which of a domain's jobs a bulk retry or cancel acts on; every field narrows it. */
export interface JobSelection {
  /** One job, by id. */
  jobId?: string | undefined;
  status?: string | undefined;
  modelId?: string | undefined;
  modelVersion?: string | undefined;
  serviceId?: string | undefined;
  jobType?: string | undefined;
  /** The `code` of the job's error. */
  errorCode?: string | undefined;
  finishedAfter?: string | undefined;
  finishedBefore?: string | undefined;
  /** At most this many jobs, oldest finished (or created) first. */
  limit: number;
}

/**
 * The SQL condition for a selection on table alias `j`, its values appended to `values` (so
 * placeholders continue from there). A caller whose `models` grant is not `*` acts only on jobs
 * of its models.
 */
export function selectionWhere(selection: JobSelection, models: Grant, values: unknown[]): string {
  return new SqlConditions(values)
    .add(selection.jobId, (p) => `j.job_id = ${p}`)
    .add(selection.status, (p) => `j.status = ${p}`)
    .add(selection.modelId, (p) => `j.model_id = ${p}`)
    .add(selection.modelVersion, (p) => `j.model_version = ${p}`)
    .add(selection.serviceId, (p) => `j.service_id = ${p}`)
    .add(selection.jobType, (p) => `j.job_type = ${p}`)
    .add(selection.errorCode, (p) => `j.error->>'code' = ${p}`)
    .add(selection.finishedAfter, (p) => `j.finished_at > ${p}::timestamptz`)
    .add(selection.finishedBefore, (p) => `j.finished_at < ${p}::timestamptz`)
    .add(models === '*' ? undefined : json(models), (p) => `${p}::jsonb ? j.model_id`)
    .toString();
}
