import type { Caller } from '../auth/caller.js';
import type { Queryable } from '../db/database.js';
import { notFound } from '../domain/errors.js';
import { type PageRequest, toPage } from '../domain/paging.js';
import * as clients from '../repositories/clients.repository.js';
import * as domains from '../repositories/domains.repository.js';
import type { AppContext } from './context.js';
import { requireDomain } from './tenant-lookup.js';

export function putDomain(
  ctx: AppContext,
  _caller: Caller,
  input: { clientId: string; domainId: string; body: { status?: domains.DomainStatus } },
) {
  const { clientId, domainId, body } = input;
  return ctx.db.transaction(async (tx) => {
    await requireClient(tx, clientId);
    return domains.upsertDomain(tx, clientId, domainId, body.status);
  });
}

export function getDomain(
  ctx: AppContext,
  _caller: Caller,
  input: { clientId: string; domainId: string },
) {
  return requireDomain(ctx.db, input.clientId, input.domainId);
}

export async function listDomains(
  ctx: AppContext,
  _caller: Caller,
  input: { clientId: string; page: PageRequest },
) {
  const { clientId, page } = input;
  await requireClient(ctx.db, clientId);
  const rows = await domains.listDomains(ctx.db.reads, clientId, page);
  return toPage(rows, page.limit, (row) => [row.domain_id]);
}

async function requireClient(q: Queryable, clientId: string): Promise<void> {
  if ((await clients.findClient(q, clientId)) === undefined) {
    throw notFound(`client "${clientId}" not found`);
  }
}
