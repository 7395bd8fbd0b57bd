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
  job_types: string[] | null;
  features: FeatureDefinition[] | null;
  timeout_s: number | null;
  max_attempts: number | null;
  handler_type: HandlerType | null;
  /** Row versions (xmin) of the service and the model version, to tell later if they changed. */
  service_stamp: string | null;
  version_stamp: string | null;
}

/**
 * The id of the active assignment for key $5 in client $1, domain $2, service $3 (null at domain
 * scope): the service's own revision first, else the domain's. Shared by the read below and the
 * insert's check that a remembered target is still current.
 */
export const ACTIVE_ASSIGNMENT_FOR_KEY = `
  from assignments a
  where a.client_id = $1 and a.domain_id = $2 and a.key = $KEY and a.status = 'active'
    and coalesce(a.service_id, '') in ('', coalesce($3, ''))
  order by a.service_id is null
  limit 1`;

export async function loadJobTarget(
  q: Queryable,
  clientId: string,
  domainId: string,
  serviceId: string | null,
  key: string,
): Promise<JobTarget> {
  const { rows } = await q.query<JobTarget>(
    `select c.client_id is not null as client_exists,
       d.status as domain_status, s.status as service_status, s.provided_features,
       a.assignment_id, a.model_id, a.model_version, a.config,
       v.job_types, v.features, v.timeout_s, v.max_attempts, v.handler->>'type' as handler_type,
       s.xmin::text as service_stamp, v.xmin::text as version_stamp
     from (select 1) as one
     left join clients c on c.client_id = $1
     left join domains d on d.client_id = $1 and d.domain_id = $2
     left join services s on s.client_id = $1 and s.domain_id = $2 and s.service_id = $3
     left join lateral (
       select a.assignment_id, a.model_id, a.model_version, a.config
       ${ACTIVE_ASSIGNMENT_FOR_KEY.replace('$KEY', '$4')}
     ) a on true
     left join model_versions v on v.model_id = a.model_id and v.model_version = a.model_version`,
    [clientId, domainId, serviceId, key],
  );
  return rows[0]!;
}
