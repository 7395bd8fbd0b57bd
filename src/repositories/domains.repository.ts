import type { Queryable } from '../db/database.js';
import type { PageRequest } from '../domain/paging.js';
import { iso } from './rows.js';

export type DomainStatus = 'active' | 'inactive';

export interface Domain {
  client_id: string;
  domain_id: string;
  status: DomainStatus;
  created_at: string;
  updated_at: string;
}

interface DomainRow {
  client_id: string;
  domain_id: string;
  status: DomainStatus;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'client_id, domain_id, status, created_at, updated_at';

export function toDomain(row: DomainRow): Domain {
  return { ...row, created_at: iso(row.created_at), updated_at: iso(row.updated_at) };
}

/** Creates (status default active) or updates a domain; the client must exist. */
export async function upsertDomain(
  q: Queryable,
  clientId: string,
  domainId: string,
  status: DomainStatus | undefined,
): Promise<{ domain: Domain; created: boolean }> {
  const { rows } = await q.query<DomainRow & { created: boolean }>(
    `insert into domains (client_id, domain_id, status) values ($1, $2, coalesce($3, 'active'))
     on conflict (client_id, domain_id) do update
       set status = coalesce($3, domains.status), updated_at = now()
     returning ${COLUMNS}, (xmax = 0) as created`,
    [clientId, domainId, status ?? null],
  );
  const row = rows[0]!;
  return { domain: toDomain(row), created: row.created };
}

export async function findDomain(
  q: Queryable,
  clientId: string,
  domainId: string,
): Promise<Domain | undefined> {
  const { rows } = await q.query<DomainRow>(
    `select ${COLUMNS} from domains where client_id = $1 and domain_id = $2`,
    [clientId, domainId],
  );
  return rows[0] && toDomain(rows[0]);
}

export async function listDomains(
  q: Queryable,
  clientId: string,
  page: PageRequest,
): Promise<Domain[]> {
  const { rows } = await q.query<DomainRow>(
    `select ${COLUMNS} from domains
     where client_id = $1 and ($2::text is null or domain_id > $2)
     order by domain_id
     limit $3`,
    [clientId, page.after?.[0] ?? null, page.limit + 1],
  );
  return rows.map(toDomain);
}

/** Whether the client and domain exist, in one round trip, so a 404 can say which is missing. */
export async function probeTenantPath(
  q: Queryable,
  clientId: string,
  domainId: string,
): Promise<{ clientExists: boolean; domain: Domain | undefined }> {
  const { rows } = await q.query<
    { client_id: string } & Partial<DomainRow> & { domain_id: string | null }
  >(
    `select c.client_id, d.domain_id, d.status, d.created_at, d.updated_at
     from clients c left join domains d on d.client_id = c.client_id and d.domain_id = $2
     where c.client_id = $1`,
    [clientId, domainId],
  );
  const row = rows[0];
  if (row === undefined) return { clientExists: false, domain: undefined };
  if (row.domain_id === null) return { clientExists: true, domain: undefined };
  return { clientExists: true, domain: toDomain(row as DomainRow) };
}

/**
 * Locks the domain row until the transaction ends; undefined when there is no such domain.
 * `update` (FOR NO KEY UPDATE) is taken by assignment upserts, `share` (FOR SHARE) by service
 * PUTs: the two conflict, so a service never resolves against a default that is being
 * replaced, while foreign-key checks (FOR KEY SHARE) from inserts into the domain still pass.
 */
export async function lockDomain(
  q: Queryable,
  clientId: string,
  domainId: string,
  mode: 'update' | 'share',
): Promise<Domain | undefined> {
  const { rows } = await q.query<DomainRow>(
    `select ${COLUMNS} from domains where client_id = $1 and domain_id = $2
     ${mode === 'update' ? 'for no key update' : 'for share'}`,
    [clientId, domainId],
  );
  return rows[0] && toDomain(rows[0]);
}
