import type { Queryable } from '../db/database.js';
import type { FeatureDefinition } from '../domain/features.js';

export interface DomainDefaultContract {
  assignment_id: string;
  model_id: string;
  model_version: string;
  features: FeatureDefinition[];
}

/**
 * The contract that governs a domain's services: the features of the model version behind the
 * domain's active `default` assignment, or undefined when the domain has none.
 */
export async function findDomainDefaultContract(
  q: Queryable,
  clientId: string,
  domainId: string,
): Promise<DomainDefaultContract | undefined> {
  const { rows } = await q.query<DomainDefaultContract>(
    `select a.assignment_id, a.model_id, a.model_version, v.features
     from assignments a
     join model_versions v on v.model_id = a.model_id and v.model_version = a.model_version
     where a.client_id = $1 and a.domain_id = $2 and a.service_id is null
       and a.key = 'default' and a.status = 'active'`,
    [clientId, domainId],
  );
  return rows[0];
}
