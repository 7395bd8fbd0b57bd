import type { Queryable } from '../db/database.js';
import type { FeatureValues } from '../domain/features.js';
import type { PageRequest } from '../domain/paging.js';
import { iso, isoOrNull, json } from './rows.js';

export type ServiceStatus = 'active' | 'departed';

export interface Service {
  client_id: string;
  domain_id: string;
  service_id: string;
  status: ServiceStatus;
  provided_features: FeatureValues;
  resolved_features: FeatureValues | null;
  created_at: string;
  updated_at: string;
  departed_at: string | null;
}

interface ServiceRow extends Omit<Service, 'created_at' | 'updated_at' | 'departed_at'> {
  created_at: Date;
  updated_at: Date;
  departed_at: Date | null;
}

const COLUMNS = `client_id, domain_id, service_id, status, provided_features, resolved_features,
  created_at, updated_at, departed_at`;

function toService(row: ServiceRow): Service {
  return {
    ...row,
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
    departed_at: isoOrNull(row.departed_at),
  };
}

export interface ServiceWrite {
  clientId: string;
  domainId: string;
  serviceId: string;
  status: ServiceStatus;
  provided: FeatureValues;
  resolved: FeatureValues | null;
}

export async function upsertService(
  q: Queryable,
  write: ServiceWrite,
): Promise<{ service: Service; created: boolean }> {
  const { rows } = await q.query<ServiceRow & { created: boolean }>(
    `insert into services (client_id, domain_id, service_id, status, provided_features,
       resolved_features, departed_at)
     values ($1, $2, $3, $4, $5::jsonb, $6::jsonb, case when $4 = 'departed' then now() end)
     on conflict (client_id, domain_id, service_id) do update
       set status = excluded.status,
           provided_features = excluded.provided_features,
           resolved_features = excluded.resolved_features,
           departed_at = case
             when excluded.status = 'active' then null
             else coalesce(services.departed_at, now()) end,
           updated_at = now()
     returning ${COLUMNS}, (xmax = 0) as created`,
    [
      write.clientId,
      write.domainId,
      write.serviceId,
      write.status,
      json(write.provided),
      write.resolved === null ? null : json(write.resolved),
    ],
  );
  const row = rows[0]!;
  return { service: toService(row), created: row.created };
}

export async function findService(
  q: Queryable,
  clientId: string,
  domainId: string,
  serviceId: string,
  options: { forUpdate?: boolean } = {},
): Promise<Service | undefined> {
  const { rows } = await q.query<ServiceRow>(
    `select ${COLUMNS} from services
     where client_id = $1 and domain_id = $2 and service_id = $3
     ${options.forUpdate === true ? 'for update' : ''}`,
    [clientId, domainId, serviceId],
  );
  return rows[0] && toService(rows[0]);
}

/** Marks a service departed; departing again keeps the first departure time. */
export async function departService(
  q: Queryable,
  clientId: string,
  domainId: string,
  serviceId: string,
): Promise<Service | undefined> {
  const { rows } = await q.query<ServiceRow>(
    `update services
     set status = 'departed', departed_at = coalesce(departed_at, now()), updated_at = now()
     where client_id = $1 and domain_id = $2 and service_id = $3
     returning ${COLUMNS}`,
    [clientId, domainId, serviceId],
  );
  return rows[0] && toService(rows[0]);
}

export async function listServices(
  q: Queryable,
  clientId: string,
  domainId: string,
  filter: { status?: ServiceStatus | undefined },
  page: PageRequest,
): Promise<Service[]> {
  const { rows } = await q.query<ServiceRow>(
    `select ${COLUMNS} from services
     where client_id = $1 and domain_id = $2
       and ($3::text is null or status = $3)
       and ($4::text is null or service_id > $4)
     order by service_id
     limit $5`,
    [clientId, domainId, filter.status ?? null, page.after?.[0] ?? null, page.limit + 1],
  );
  return rows.map(toService);
}
