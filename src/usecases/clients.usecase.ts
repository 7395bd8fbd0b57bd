import type { Caller } from '../auth/caller.js';
import { notFound } from '../domain/errors.js';
import { type PageRequest, toPage } from '../domain/paging.js';
import * as clients from '../repositories/clients.repository.js';
import type { AppContext } from './context.js';

export function putClient(
  ctx: AppContext,
  _caller: Caller,
  input: { clientId: string; body: { name?: string } },
) {
  return clients.upsertClient(ctx.db, input.clientId, input.body.name);
}

export async function getClient(ctx: AppContext, _caller: Caller, input: { clientId: string }) {
  const client = await clients.findClient(ctx.db, input.clientId);
  if (client === undefined) throw notFound(`client "${input.clientId}" not found`);
  return client;
}

/** Lists only the clients the caller's token names. */
export async function listClients(ctx: AppContext, caller: Caller, input: { page: PageRequest }) {
  const { page } = input;
  const rows = await clients.listClients(ctx.db, caller.clients, page);
  return toPage(rows, page.limit, (row) => [row.client_id]);
}
