import type { Queryable } from '../db/database.js';
import type { FeatureDefinition, FeatureValues } from '../domain/features.js';
import type { HandlerType } from '../domain/handlers.js';

/**
 * Everything the checks for starting a job need, read in one round trip: whether the client,
 * domain and service exist and their statuses, the active assignment for the key (the
 * service's own revision first, else the domain's) and its model version.
 */
export interface JobTarget {
  client_exists: boolean;
  domain_status: 'active' | 'inactive' | null;
  service_status: 'active' | 'departed' | null;
  provided_features: FeatureValues | null;
  assignment_id: string | null;
  model_id: string | null;
  model_version: string | null;
  config: Record<string, unknown> | null;
  /** The assignment's priority, the default of its jobs. */
  priority: number | null;
  job_types: string[] | null;
  features: FeatureDefinition[] | null;
  timeout_s: number | null;
  max_attempts: number | null;
  handler_type: HandlerType | null;
  /** Row versions (xmin) of the service and the model version, to tell later if they changed. */
  service_stamp: string | null;
  version_stamp: string | null;
}

/** SQL expressions naming a job target's parts, for the fragments below. */
export interface TargetColumns {
  client: string;
  domain: string;
  /** null (SQL) at domain scope. */
  service: string;
  key: string;
}

/**
 * A subquery body selecting the active assignment for a key: the service's own revision
 * first, else the domain's. Shared by the read below and the inserts' check that a remembered
 * target is still current.
 */
export function activeAssignmentForKey(t: TargetColumns): string {
  return `
  from assignments a
  where a.client_id = ${t.client} and a.domain_id = ${t.domain} and a.key = ${t.key}
    and a.status = 'active' and coalesce(a.service_id, '') in ('', coalesce(${t.service}, ''))
  order by a.service_id is null
  limit 1`;
}

/** A remembered target: what was read, and the row versions it was read from. */
export type RememberedTarget = TargetColumns & {
  assignmentId: string;
  modelId: string;
  modelVersion: string;
  serviceStamp: string;
  versionStamp: string;
};

/**
 * True when a remembered target still holds: the domain is active, the service and model
 * version rows are the row versions that were read (any update makes a new row version: a new
 * xmin), and the key still selects the assignment the job names.
 */
export function targetIsCurrent(t: RememberedTarget): string {
  return `
  ${domainIsActive(t)}
  and ${versionIsUnchanged(t)}
  and ${serviceAndAssignmentAreCurrent(t)}`;
}

/**
 * The domain `t` names is active. A scalar subquery (null when the domain is gone, so false in
 * a WHERE): PostgreSQL runs it as written, one primary-key lookup, where an EXISTS or IN may
 * become a semi-join that scans the table (job-batch-insert.repository).
 */
export function domainIsActive(t: Pick<TargetColumns, 'client' | 'domain'>): string {
  return `(select d.status from domains d
           where d.client_id = ${t.client} and d.domain_id = ${t.domain}) = 'active'`;
}

/** The model version `t` names is the row version read (`versionStamp`); as `domainIsActive`. */
export function versionIsUnchanged(
  t: Pick<RememberedTarget, 'modelId' | 'modelVersion' | 'versionStamp'>,
): string {
  return `${t.versionStamp} = (select v.xmin::text from model_versions v
           where v.model_id = ${t.modelId} and v.model_version = ${t.modelVersion})`;
}

/**
 * The part of `targetIsCurrent` that is the target's own: its service's row version, and the
 * assignment its key selects. A statement checking many targets checks their domains and model
 * versions once each instead (`job-batch-insert.repository`).
 */
export function serviceAndAssignmentAreCurrent(
  t: Pick<RememberedTarget, keyof TargetColumns | 'assignmentId' | 'serviceStamp'>,
): string {
  return `(${t.service}::text is null or exists (
        select 1 from services s
        where s.client_id = ${t.client} and s.domain_id = ${t.domain} and s.service_id = ${t.service}
          and s.xmin::text = ${t.serviceStamp}))
  and (select a.assignment_id ${activeAssignmentForKey(t)}) = ${t.assignmentId}`;
}

/**
 * The read of a job target ($1 client, $2 domain, $4 key) for each row of `from`, whose
 * service is the SQL expression `service` (null at domain scope), with `extra` columns first.
 */
function targetRead(from: string, service: string, extra = ''): string {
  return `select ${extra} c.client_id is not null as client_exists,
       d.status as domain_status, s.status as service_status, s.provided_features,
       a.assignment_id, a.model_id, a.model_version, a.config, a.priority,
       v.job_types, v.features, v.timeout_s, v.max_attempts, v.handler->>'type' as handler_type,
       s.xmin::text as service_stamp, v.xmin::text as version_stamp
     from ${from}
     left join clients c on c.client_id = $1
     left join domains d on d.client_id = $1 and d.domain_id = $2
     left join services s on s.client_id = $1 and s.domain_id = $2 and s.service_id = ${service}
     left join lateral (
       select a.assignment_id, a.model_id, a.model_version, a.config, a.priority
       ${activeAssignmentForKey({ client: '$1', domain: '$2', service, key: '$4' })}
     ) a on true
     left join model_versions v on v.model_id = a.model_id and v.model_version = a.model_version`;
}

const LOAD_TARGET = targetRead('(select 1) as one', '$3');
const LOAD_TARGETS = targetRead(
  '(select distinct unnest($3::text[]) as service_id) as req',
  'req.service_id',
  'req.service_id as requested,',
);

export async function loadJobTarget(
  q: Queryable,
  clientId: string,
  domainId: string,
  serviceId: string | null,
  key: string,
): Promise<JobTarget> {
  const { rows } = await q.query<JobTarget>(LOAD_TARGET, [clientId, domainId, serviceId, key]);
  return rows[0]!;
}

/**
 * `loadJobTarget` for many services of one domain at once (one round trip): each service's
 * target, by service id.
 */
export async function loadJobTargets(
  q: Queryable,
  clientId: string,
  domainId: string,
  serviceIds: readonly string[],
  key: string,
): Promise<Map<string, JobTarget>> {
  const { rows } = await q.query<JobTarget & { requested: string }>(LOAD_TARGETS, [
    clientId,
    domainId,
    serviceIds,
    key,
  ]);
  return new Map(rows.map(({ requested, ...target }) => [requested, target]));
}
