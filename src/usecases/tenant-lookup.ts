import type { Queryable } from '../db/database.js';
import { notFound } from '../domain/errors.js';
import type { Domain } from '../repositories/domains.repository.js';
import { probeTenantPath } from '../repositories/domains.repository.js';
import { findService, type Service } from '../repositories/services.repository.js';

/** The domain at a tenant path, or a 404 that says whether the client or the domain is missing. */
export async function requireDomain(
  q: Queryable,
  clientId: string,
  domainId: string,
): Promise<Domain> {
  const { clientExists, domain } = await probeTenantPath(q, clientId, domainId);
  if (!clientExists) throw notFound(`client "${clientId}" not found`);
  if (domain === undefined)
    throw notFound(`domain "${domainId}" not found in client "${clientId}"`);
  return domain;
}

export async function requireService(
  q: Queryable,
  clientId: string,
  domainId: string,
  serviceId: string,
): Promise<Service> {
  const service = await findService(q, clientId, domainId, serviceId);
  if (service !== undefined) return service;
  await requireDomain(q, clientId, domainId);
  throw notFound(`service "${serviceId}" not found in domain "${domainId}"`);
}
