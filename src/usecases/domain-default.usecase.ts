import { isDeepStrictEqual } from 'node:util';
import type { Queryable } from '../db/database.js';
import {
  describeProblems,
  resolveFeatures,
  type FeatureDefinition,
  type FeatureValues,
  type Problem,
} from '../domain/features.js';
import { mergeProvidedFeatures } from '../domain/provided-features.js';
import { badRequest, unprocessable } from '../domain/errors.js';
import * as assignments from '../repositories/assignments.repository.js';

/** One entry of `service_updates`: a patch to that service's provided_features. */
export interface ServiceUpdate {
  service_id: string;
  static_features: FeatureValues;
}

export interface BlockingService {
  service_id: string;
  problems: Problem[];
}

export interface GoverningContract {
  model_id: string;
  model_version: string;
  features: FeatureDefinition[];
}

// A 422 lists every blocking service in `blocking_services`; the message names the first few.
const NAMED_IN_MESSAGE = 5;

/** A service named twice would make the outcome depend on the order of the list: 400. */
export function checkServiceUpdates(updates: readonly ServiceUpdate[]): void {
  const seen = new Set<string>();
  const repeated = new Set<string>();
  for (const { service_id } of updates) {
    if (seen.has(service_id)) repeated.add(service_id);
    seen.add(service_id);
  }
  if (repeated.size > 0) {
    throw badRequest(
      `service_updates names ${[...repeated].map((id) => `"${id}"`).join(', ')} more than ` +
        'once; send one entry per service',
    );
  }
}

/**
 * The domain default's hold on its services: the active default's contract governs every
 * non-departed service of its domain. Inside the upsert's transaction, with the domain locked,
 * applies `updates` to the non-departed services, resolves every one against the contract and
 * writes what changed in one statement. When any service fails it throws a 422 listing them all,
 * having written nothing. With no contract (the domain has no active default) the patches are
 * applied and resolved_features stay null.
 */
export async function governServices(
  tx: Queryable,
  clientId: string,
  domainId: string,
  contract: GoverningContract | null,
  updates: readonly ServiceUpdate[],
): Promise<void> {
  const services = await assignments.lockGovernedServices(tx, clientId, domainId);
  await requireUpdatableServices(tx, clientId, domainId, services, updates);
  const plan = planServiceFeatures(services, updates, contract?.features ?? null);
  if (contract !== null && plan.blocking.length > 0) throw blockingError(contract, plan.blocking);
  await assignments.writeServiceFeatures(tx, clientId, domainId, plan.writes);
}

/**
 * Patches and resolves every service. `writes` holds only the services whose provided or
 * resolved features change, so an unchanged default rewrites nothing.
 */
export function planServiceFeatures(
  services: readonly assignments.GovernedService[],
  updates: readonly ServiceUpdate[],
  contract: readonly FeatureDefinition[] | null,
): { writes: assignments.ServiceFeaturesWrite[]; blocking: BlockingService[] } {
  const patches = new Map(updates.map((update) => [update.service_id, update.static_features]));
  const writes: assignments.ServiceFeaturesWrite[] = [];
  const blocking: BlockingService[] = [];
  for (const service of services) {
    const patch = patches.get(service.service_id);
    const provided =
      patch === undefined
        ? service.provided_features
        : mergeProvidedFeatures(service.provided_features, patch);
    const resolution =
      contract === null ? { ok: true as const, value: null } : resolveFeatures(contract, provided);
    if (!resolution.ok) {
      blocking.push({ service_id: service.service_id, problems: resolution.problems });
    } else if (
      !isDeepStrictEqual(provided, service.provided_features) ||
      !isDeepStrictEqual(resolution.value, service.resolved_features)
    ) {
      writes.push({
        service_id: service.service_id,
        provided_features: provided,
        resolved_features: resolution.value,
      });
    }
  }
  return { writes, blocking };
}

/** Every service in `updates` must be one the default governs: unknown or departed is a 422. */
async function requireUpdatableServices(
  tx: Queryable,
  clientId: string,
  domainId: string,
  governed: readonly assignments.GovernedService[],
  updates: readonly ServiceUpdate[],
): Promise<void> {
  const governedIds = new Set(governed.map((service) => service.service_id));
  const others = updates.map((u) => u.service_id).filter((id) => !governedIds.has(id));
  if (others.length === 0) return;
  const statuses = await assignments.findServiceStatuses(tx, clientId, domainId, others);
  const reasons = others.map((id) =>
    statuses.has(id) ? `"${id}" has departed` : `"${id}" is not a service of domain "${domainId}"`,
  );
  throw unprocessable(
    `service_updates may only patch non-departed services of the domain: ${reasons.join('; ')}`,
  );
}

function blockingError(contract: GoverningContract, blocking: BlockingService[]) {
  const named = blocking
    .slice(0, NAMED_IN_MESSAGE)
    .map((service) => `"${service.service_id}" (${describeProblems(service.problems)})`);
  const more = blocking.length - named.length;
  return unprocessable(
    `${blocking.length} service(s) would not satisfy the contract of ` +
      `${contract.model_id}@${contract.model_version}; nothing was changed: ${named.join('; ')}` +
      (more > 0 ? `; and ${more} more (see blocking_services)` : ''),
    { blocking_services: blocking },
  );
}
