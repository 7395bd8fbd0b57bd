import { notFound } from '../domain/errors.js';
import { type PageRequest, toPage } from '../domain/paging.js';
import * as clients from '../repositories/clients.repository.js';
import * as domains from '../repositories/domains.repository.js';
import type { AppContext } from './context.js';
import { requireDomain } from './tenant-lookup.js';

export function putDomain(
  ctx: AppContext,
  clientId: string,
  domainId: string,
  body: { status?: domains.DomainStatus },
) {
  return ctx.db.transaction(async (tx) => {
    if ((await clients.findClient(tx, clientId)) === undefined) {
      throw notFound(`client "${clientId}" not found`);
    }
    return domains.upsertDomain(tx, clientId, domainId, body.status);
  });
}

export function getDomain(ctx: AppContext, clientId: string, domainId: string) {
  return requireDomain(ctx.db, clientId, domainId);
}

export async function listDomains(ctx: AppContext, clientId: string, page: PageRequest) {
  if ((await clients.findClient(ctx.db, clientId)) === undefined) {
    throw notFound(`client "${clientId}" not found`);
  }
  const rows = await domains.listDomains(ctx.db, clientId, page);
  return toPage(rows, page.limit, (row) => [row.domain_id]);
}
