import type { Queryable } from '../db/database.js';
import type { Grant } from '../auth/caller.js';
import type { PageRequest } from '../domain/paging.js';
import { iso } from './rows.js';

export interface Client {
  client_id: string;
  name: string | null;
  /** Dispatched and running jobs of this client at most; null is unlimited. */
  max_in_flight: number | null;
  created_at: string;
  updated_at: string;
}

interface ClientRow {
  client_id: string;
  name: string | null;
  max_in_flight: number | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'client_id, name, max_in_flight, created_at, updated_at';

function toClient(row: ClientRow): Client {
  return { ...row, created_at: iso(row.created_at), updated_at: iso(row.updated_at) };
}

/** What a client write sets; a field left undefined keeps the stored value. */
export interface ClientWrite {
  name?: string | undefined;
  maxInFlight?: number | null | undefined;
}

/** Creates or updates a client. */
export async function upsertClient(
  q: Queryable,
  clientId: string,
  write: ClientWrite,
): Promise<{ client: Client; created: boolean }> {
  // xmax = 0 only on a freshly inserted row: it tells 201 from 200 in the same round trip.
  const { rows } = await q.query<ClientRow & { created: boolean }>(
    `insert into clients (client_id, name, max_in_flight) values ($1, $2, $4::integer)
     on conflict (client_id) do update
       set name = case when $3 then excluded.name else clients.name end,
           max_in_flight = case when $5 then excluded.max_in_flight else clients.max_in_flight end,
           updated_at = now()
     returning ${COLUMNS}, (xmax = 0) as created`,
    [
      clientId,
      write.name ?? null,
      write.name !== undefined,
      write.maxInFlight ?? null,
      write.maxInFlight !== undefined,
    ],
  );
  const row = rows[0]!;
  return { client: toClient(row), created: row.created };
}

export async function findClient(q: Queryable, clientId: string): Promise<Client | undefined> {
  const { rows } = await q.query<ClientRow>(`select ${COLUMNS} from clients where client_id = $1`, [
    clientId,
  ]);
  return rows[0] && toClient(rows[0]);
}

export async function listClients(
  q: Queryable,
  visible: Grant,
  page: PageRequest,
): Promise<Client[]> {
  const { rows } = await q.query<ClientRow>(
    `select ${COLUMNS} from clients
     where ($1::jsonb is null or $1::jsonb ? client_id)
       and ($2::text is null or client_id > $2)
     order by client_id
     limit $3`,
    [visible === '*' ? null : JSON.stringify(visible), page.after?.[0] ?? null, page.limit + 1],
  );
  return rows.map(toClient);
}
