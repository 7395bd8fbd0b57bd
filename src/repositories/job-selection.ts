import type { Grant } from '../auth/caller.js';
import { json } from './rows.js';

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
 * placeholders continue from there). Only the fields given become conditions, so each
 * combination is planned on its own (a `$n is null or ...` condition cannot use an index). A
 * caller whose `models` grant is not `*` acts only on jobs of its models.
 */
export function selectionWhere(selection: JobSelection, models: Grant, values: unknown[]): string {
  const conditions: string[] = [];
  const add = (sql: (placeholder: string) => string, value: unknown) => {
    if (value === undefined) return;
    values.push(value);
    conditions.push(sql(`$${values.length}`));
  };
  add((p) => `j.job_id = ${p}`, selection.jobId);
  add((p) => `j.status = ${p}`, selection.status);
  add((p) => `j.model_id = ${p}`, selection.modelId);
  add((p) => `j.model_version = ${p}`, selection.modelVersion);
  add((p) => `j.service_id = ${p}`, selection.serviceId);
  add((p) => `j.job_type = ${p}`, selection.jobType);
  add((p) => `j.error->>'code' = ${p}`, selection.errorCode);
  add((p) => `j.finished_at > ${p}::timestamptz`, selection.finishedAfter);
  add((p) => `j.finished_at < ${p}::timestamptz`, selection.finishedBefore);
  if (models !== '*') add((p) => `${p}::jsonb ? j.model_id`, json(models));
  return conditions.length === 0 ? 'true' : conditions.join(' and ');
}
