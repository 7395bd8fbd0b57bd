import { isDeepStrictEqual } from 'node:util';
import { grants, type Caller } from '../auth/caller.js';
import type { Queryable } from '../db/database.js';
import { describeProblems, resolveFeatures } from '../domain/features.js';
import { mergeProvidedFeatures } from '../domain/provided-features.js';
import { forbidden, notFound, unprocessable } from '../domain/errors.js';
import { type PageRequest, requireCastableCursor, toPage } from '../domain/paging.js';
import * as assignments from '../repositories/assignments.repository.js';
import type {
  Assignment,
  AssignmentPlace,
  AssignmentStatus,
} from '../repositories/assignments.repository.js';
import { lockDomain } from '../repositories/domains.repository.js';
import { findVersion, type ModelVersion } from '../repositories/model-versions.repository.js';
import { findModel } from '../repositories/models.repository.js';
import type { Service } from '../repositories/services.repository.js';
import type { AppContext } from './context.js';
import {
  checkServiceUpdates,
  governServices,
  type ServiceUpdate,
} from './domain-default.usecase.js';
import { requireDomain, requireService } from './tenant-lookup.js';

/** The key whose domain-scope revision governs every service of the domain. */
export const DEFAULT_KEY = 'default';

export interface UpsertAssignmentBody {
  model_id: string;
  model_version: string;
  status?: AssignmentStatus;
  config?: Record<string, unknown>;
  priority?: number;
  metadata?: Record<string, unknown>;
  service_updates?: ServiceUpdate[];
}

/**
 * What makes a revision different: its model, version, status, config (compared as JSON
 * values) and priority. Metadata is not part of it: a change of metadata alone keeps the
 * current revision.
 */
export type RevisionFields = Pick<
  Assignment,
  'model_id' | 'model_version' | 'status' | 'config' | 'priority'
>;

/** Where an assignment key lives: its tenant path (serviceId null at domain scope) and key. */
export type AssignmentKeyPath = AssignmentPlace & { key: string };

export type RevisionDecision<T> =
  { kind: 'keep'; revision: T } | { kind: 'replace'; archive: T | undefined; created: boolean };

/**
 * Whether an upsert keeps the key's current revision or replaces it. Replacing archives the
 * active revision, if any, and answers 201 only when there was none (a first revision, or a
 * key brought back after it was retired).
 */
export function decideRevision<T extends RevisionFields>(
  current: T | undefined,
  requested: RevisionFields,
): RevisionDecision<T> {
  if (
    current !== undefined &&
    current.model_id === requested.model_id &&
    current.model_version === requested.model_version &&
    current.status === requested.status &&
    current.priority === requested.priority &&
    isDeepStrictEqual(current.config, requested.config)
  ) {
    return { kind: 'keep', revision: current };
  }
  const active = current?.status === 'active' ? current : undefined;
  return { kind: 'replace', archive: active, created: active === undefined };
}

/**
 * Creates or updates the revision of `key` at `place`. The domain row stays locked until the
 * transaction ends, so upserts in one domain, and service PUTs against its default, take turns.
 * The domain default also patches and re-resolves every non-departed service (all or nothing);
 * retiring it leaves the services ungoverned (resolved_features null).
 */
export async function upsertAssignment(
  ctx: AppContext,
  caller: Caller,
  input: AssignmentKeyPath & { body: UpsertAssignmentBody },
): Promise<{ assignment: Assignment; created: boolean }> {
  const { key, body, ...place } = input;
  const requested: RevisionFields = {
    model_id: body.model_id,
    model_version: body.model_version,
    status: body.status ?? 'active',
    config: asStored(body.config ?? {}),
    priority: body.priority ?? 0,
  };
  const governing = place.serviceId === null && key === DEFAULT_KEY;
  const updates = body.service_updates ?? [];
  checkServiceUpdates(updates);
  if (!grants(caller.models, body.model_id)) {
    throw forbidden(`this token may not act on model "${body.model_id}"`);
  }

  return ctx.db.transaction(async (tx) => {
    const service = await lockPlace(tx, place);
    const version = await requireVersion(tx, body.model_id, body.model_version);
    if (governing && requested.status === 'active') {
      await governServices(tx, place.clientId, place.domainId, version, updates);
    } else if (updates.length > 0) {
      // service_updates patch services on every upsert, not only on the active domain
      // default: a service-scope upsert, another key, or retiring the default. Patched services
      // stay governed by the domain's default contract (none once it is retired), whichever
      // revision this upsert writes.
      const contract = governing
        ? null
        : ((await assignments.findDomainDefaultContract(tx, place.clientId, place.domainId)) ??
          null);
      await governServices(tx, place.clientId, place.domainId, contract, updates);
    }
    if (requested.status === 'active' && service !== undefined) {
      checkService(withUpdates(service, updates), version);
    }
    const result = await writeRevision(tx, place, key, requested, asStored(body.metadata ?? {}));
    if (governing && requested.status === 'archived') {
      await assignments.clearResolvedFeatures(tx, place.clientId, place.domainId);
    }
    return result;
  });
}

export function getAssignment(ctx: AppContext, _caller: Caller, input: AssignmentKeyPath) {
  const { key, ...place } = input;
  return requireCurrentRevision(ctx.db, place, key);
}

export async function listAssignments(
  ctx: AppContext,
  _caller: Caller,
  input: AssignmentPlace & { filter: { status?: AssignmentStatus }; page: PageRequest },
) {
  const { filter, page, ...place } = input;
  await requirePlace(ctx.db, place);
  const rows = await assignments.listCurrentRevisions(ctx.db.reads, place, filter, page);
  return toPage(rows, page.limit, (row) => [row.key]);
}

export async function listRevisions(
  ctx: AppContext,
  _caller: Caller,
  input: AssignmentKeyPath & { page: PageRequest },
) {
  const { key, page, ...place } = input;
  // The cursor is a revision id; anything else would reach PostgreSQL's uuid parser.
  requireCastableCursor(page.after, ['uuid']);
  const after = page.after?.[0];
  const rows = await assignments.listRevisions(ctx.db.reads, place, key, page);
  if (rows.length === 0) {
    // No revisions at all is a 404; past the last page of a known key, an empty page.
    if (after === undefined) await requireCurrentRevision(ctx.db, place, key);
    else await requirePlace(ctx.db, place);
  }
  return toPage(rows, page.limit, (row) => [row.assignment_id]);
}

/** The key's current revision, or a 404 naming the first thing missing on the way to it. */
async function requireCurrentRevision(
  q: Queryable,
  place: AssignmentPlace,
  key: string,
): Promise<Assignment> {
  const revision = await assignments.findCurrentRevision(q, place, key);
  if (revision !== undefined) return revision;
  await requirePlace(q, place);
  throw notFound(`assignment "${key}" not found ${describePlace(place)}`);
}

/**
 * Locks the domain and checks the tenant path (404) and, at service scope, that the service
 * has not departed (422). Returns the service at service scope.
 */
async function lockPlace(tx: Queryable, place: AssignmentPlace): Promise<Service | undefined> {
  if ((await lockDomain(tx, place.clientId, place.domainId, 'update')) === undefined) {
    await requireDomain(tx, place.clientId, place.domainId);
  }
  if (place.serviceId === null) return undefined;
  const service = await requireService(tx, place.clientId, place.domainId, place.serviceId);
  if (service.status === 'departed') {
    throw unprocessable(
      `service "${place.serviceId}" has departed; its assignments can be read but not changed`,
    );
  }
  return service;
}

async function requirePlace(q: Queryable, place: AssignmentPlace): Promise<void> {
  if (place.serviceId === null) await requireDomain(q, place.clientId, place.domainId);
  else await requireService(q, place.clientId, place.domainId, place.serviceId);
}

async function requireVersion(
  q: Queryable,
  modelId: string,
  modelVersion: string,
): Promise<ModelVersion> {
  const version = await findVersion(q, modelId, modelVersion);
  if (version !== undefined) return version;
  if ((await findModel(q, modelId)) === undefined) {
    throw unprocessable(`model "${modelId}" not found; register it with PUT /v2/models/${modelId}`);
  }
  throw unprocessable(`version "${modelVersion}" of model "${modelId}" not found`);
}

/** The service as `updates` leave it. */
function withUpdates(service: Service, updates: readonly ServiceUpdate[]): Service {
  const patch = updates.find((update) => update.service_id === service.service_id);
  if (patch === undefined) return service;
  return {
    ...service,
    provided_features: mergeProvidedFeatures(service.provided_features, patch.static_features),
  };
}

/** A service-scope revision must fit the service it serves; its stored features stay as they are. */
function checkService(service: Service, version: ModelVersion): void {
  const resolution = resolveFeatures(version.features, service.provided_features);
  if (resolution.ok) return;
  throw unprocessable(
    `service "${service.service_id}" does not satisfy the contract of ` +
      `${version.model_id}@${version.model_version}: ${describeProblems(resolution.problems)}`,
    { blocking_services: [{ service_id: service.service_id, problems: resolution.problems }] },
  );
}

async function writeRevision(
  tx: Queryable,
  place: AssignmentPlace,
  key: string,
  requested: RevisionFields,
  metadata: Record<string, unknown>,
): Promise<{ assignment: Assignment; created: boolean }> {
  const current = await assignments.findCurrentRevision(tx, place, key);
  const decision = decideRevision(current, requested);
  switch (decision.kind) {
    case 'keep':
      return { assignment: decision.revision, created: false };
    case 'replace': {
      if (decision.archive !== undefined) {
        await assignments.archiveRevision(tx, place.clientId, decision.archive.assignment_id);
      }
      const assignment = await assignments.insertRevision(tx, place, {
        key,
        modelId: requested.model_id,
        modelVersion: requested.model_version,
        status: requested.status,
        config: requested.config,
        priority: requested.priority,
        metadata,
      });
      return { assignment, created: decision.created };
    }
  }
}

function describePlace(place: AssignmentPlace): string {
  return place.serviceId === null
    ? `in domain "${place.domainId}"`
    : `for service "${place.serviceId}" in domain "${place.domainId}"`;
}

/** The value as it reads back from jsonb, so `-0` and `0` compare equal. */
function asStored<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
