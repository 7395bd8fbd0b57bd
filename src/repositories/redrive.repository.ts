import type { Grant } from '../auth/caller.js';
import type { Queryable } from '../db/database.js';
import type { HandlerType } from '../domain/handlers.js';
import { selectionWhere, type JobSelection } from './job-selection.js';
import { laneKey, laneSeq, laneStarts } from './lane-sql.js';

/** A job started again from a final one. */
export interface RetriedJob {
  job_id: string;
  retry_of: string;
  model_id: string;
  model_version: string;
  job_type: string;
  handler_type: HandlerType;
}

/**
 * Starts a new queued job from each `failure` or `cancelled` job of the domain that `selection`
 * picks (oldest finished first), in one statement: the same assignment revision, input,
 * features, config, trigger, lineage, priority and attempts allowed, a new id, `retry_of`
 * naming the original, which is not changed, and `traceparent` the retry request's trace
 * context (the retry is a new trace's work, linked to the original through `retry_of`). The deadline and the handler are the version's
 * now: a retry after a fix goes where the version's jobs go today. Retries of one lane take
 * consecutive places in it (see migration 000006).
 */
export async function insertRetries(
  q: Queryable,
  clientId: string,
  domainId: string,
  selection: JobSelection,
  models: Grant,
  traceparent: string | null,
): Promise<RetriedJob[]> {
  const values: unknown[] = [clientId, domainId];
  const where = selectionWhere(selection, models, values);
  values.push(traceparent);
  const traceparentParam = `$${values.length}::text`;
  values.push(selection.limit);
  const { rows } = await q.query<RetriedJob>(
    `with picked as (
       select j.job_id, j.client_id, j.domain_id, j.service_id, j.assignment_id,
         j.assignment_key, j.model_id, j.model_version, j.job_type, j.input, j.features,
         j.config, j.trigger, j.lineage, j.max_attempts, j.priority, v.timeout_s,
         v.handler->>'type' as handler_type,
         row_number() over (order by j.finished_at, j.job_id) as ord
       from jobs j
       join model_versions v on v.model_id = j.model_id and v.model_version = j.model_version
       where j.client_id = $1 and j.domain_id = $2
         and j.status in ('failure', 'cancelled') and ${where}
       order by j.finished_at, j.job_id
       limit $${values.length}
     ),
     -- Materialized, so each new job's id is drawn once and answered as inserted.
     laned as materialized (
       select p.*, ${laneKey('p')} as lane_key,
         pie_job_id(nextval('pie_job_number')) as new_job_id
       from picked p
     ),
     ${laneStarts('laned')},
     inserted as (
       insert into jobs (job_id, client_id, domain_id, service_id, assignment_id, assignment_key,
         model_id, model_version, job_type, input, features, config, trigger, lineage,
         max_attempts, deadline_at, handler_type, priority, lane_seq, retry_of, traceparent)
       select new_job_id, client_id, domain_id, service_id, assignment_id, assignment_key,
         model_id, model_version, job_type, input, features, config, trigger, lineage,
         max_attempts, now() + make_interval(secs => timeout_s), handler_type, priority,
         ${laneSeq('ord')}, job_id, ${traceparentParam}
       from laned join lanes using (lane_key)
     )
     -- Answered from laned, not by joining the inserted rows back to it: nothing to match up.
     select new_job_id as job_id, job_id as retry_of, model_id, model_version, job_type,
       handler_type
     from laned
     order by ord`,
    values,
  );
  return rows;
}
