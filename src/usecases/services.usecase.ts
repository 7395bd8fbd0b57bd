import type { Caller } from '../auth/caller.js';
import { describeProblems, resolveFeatures, type FeatureValues } from '../domain/features.js';
import { notFound, unprocessable } from '../domain/errors.js';
import { type PageRequest, toPage } from '../domain/paging.js';
import { findDomainDefaultContract } from '../repositories/assignments.repository.js';
import { lockDomain } from '../repositories/domains.repository.js';
import * as services from '../repositories/services.repository.js';
import type { AppContext } from './context.js';
import { requireDomain, requireService } from './tenant-lookup.js';

export interface PutServiceBody {
  provided_features?: FeatureValues;
  status?: services.ServiceStatus;
}

/**
 * Creates or updates a service. An active service is resolved against the domain default
 * contract when the domain has one (422 with the problems otherwise); without a default its
 * resolved_features are null. Departed services are not blocked (they receive no jobs); their
 * resolved_features are null when they no longer resolve.
 */
export function putService(
  ctx: AppContext,
  _caller: Caller,
  input: { clientId: string; domainId: string; serviceId: string; body: PutServiceBody },
) {
  const { clientId, domainId, serviceId, body } = input;
  return ctx.db.transaction(async (tx) => {
    // Shared with other service PUTs, exclusive of a default assignment upsert, so the contract
    // read below stays the one that governs the domain until this transaction commits.
    if ((await lockDomain(tx, clientId, domainId, 'share')) === undefined) {
      await requireDomain(tx, clientId, domainId);
    }
    const existing = await services.findService(tx, clientId, domainId, serviceId, {
      forUpdate: true,
    });
    const status = body.status ?? existing?.status ?? 'active';
    const provided = body.provided_features ?? existing?.provided_features ?? {};
    const contract = await findDomainDefaultContract(tx, clientId, domainId);

    let resolved: FeatureValues | null = null;
    if (contract !== undefined) {
      const resolution = resolveFeatures(contract.features, provided);
      if (resolution.ok) {
        resolved = resolution.value;
      } else if (status === 'active') {
        throw unprocessable(
          `service "${serviceId}" does not satisfy the domain default contract ` +
            `(${contract.model_id}@${contract.model_version}): ${describeProblems(resolution.problems)}`,
          { problems: resolution.problems },
        );
      }
    }
    return services.upsertService(tx, {
      clientId,
      domainId,
      serviceId,
      status,
      provided,
      resolved,
    });
  });
}

export function getService(
  ctx: AppContext,
  _caller: Caller,
  input: { clientId: string; domainId: string; serviceId: string },
) {
  return requireService(ctx.db, input.clientId, input.domainId, input.serviceId);
}

export async function departService(
  ctx: AppContext,
  _caller: Caller,
  input: { clientId: string; domainId: string; serviceId: string },
) {
  const { clientId, domainId, serviceId } = input;
  const service = await services.departService(ctx.db, clientId, domainId, serviceId);
  if (service !== undefined) return service;
  await requireDomain(ctx.db, clientId, domainId);
  throw notFound(`service "${serviceId}" not found in domain "${domainId}"`);
}

export async function listServices(
  ctx: AppContext,
  _caller: Caller,
  input: {
    clientId: string;
    domainId: string;
    filter: { status?: services.ServiceStatus };
    page: PageRequest;
  },
) {
  const { clientId, domainId, filter, page } = input;
  await requireDomain(ctx.db, clientId, domainId);
  const rows = await services.listServices(ctx.db.reads, clientId, domainId, filter, page);
  return toPage(rows, page.limit, (row) => [row.service_id]);
}
