import type { Caller } from '../auth/caller.js';
import { forbidden, notFound } from '../domain/errors.js';
import { type PageRequest, toPage } from '../domain/paging.js';
import * as clients from '../repositories/clients.repository.js';
import type { AppContext } from './context.js';

/**
 * Creates or updates a client. Its `max_in_flight` protects the fleet from one tenant's load,
 * so only an admin may set or change it; `tenants:write` alone may still name the client.
 */
export function putClient(
  ctx: AppContext,
  caller: Caller,
  input: { clientId: string; body: { name?: string; max_in_flight?: number | null } },
) {
  const { name, max_in_flight: maxInFlight } = input.body;
  if (maxInFlight !== undefined && !caller.scopes.has('admin')) {
    throw forbidden("a client's max_in_flight caps its share of the fleet: setting it needs admin");
  }
  return clients.upsertClient(ctx.db, input.clientId, { name, maxInFlight });
}

export async function getClient(ctx: AppContext, _caller: Caller, input: { clientId: string }) {
  const client = await clients.findClient(ctx.db, input.clientId);
  if (client === undefined) throw notFound(`client "${input.clientId}" not found`);
  return client;
}

/** Lists only the clients the caller's token names. */
export async function listClients(ctx: AppContext, caller: Caller, input: { page: PageRequest }) {
  const { page } = input;
  const rows = await clients.listClients(ctx.db.reads, caller.clients, page);
  return toPage(rows, page.limit, (row) => [row.client_id]);
}
