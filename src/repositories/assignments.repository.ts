import type { Queryable } from '../db/database.js';
import type { FeatureDefinition, FeatureValues } from '../domain/features.js';
import type { PageRequest } from '../domain/paging.js';
import { iso, isoOrNull, json } from './rows.js';

export type AssignmentStatus = 'active' | 'archived';
export type AssignmentScope = 'domain' | 'service';

export interface Assignment {
  assignment_id: string;
  client_id: string;
  domain_id: string;
  service_id: string | null;
  scope: AssignmentScope;
  key: string;
  model_id: string;
  model_version: string;
  status: AssignmentStatus;
  config: Record<string, unknown>;
  /** The default priority of jobs run through this revision. */
  priority: number;
  metadata: Record<string, unknown>;
  created_at: string;
  archived_at: string | null;
}

interface AssignmentRow extends Omit<Assignment, 'created_at' | 'archived_at'> {
  created_at: Date;
  archived_at: Date | null;
}

/** Where a key lives: a domain (`serviceId` null) or one service of it. */
export interface AssignmentPlace {
  clientId: string;
  domainId: string;
  serviceId: string | null;
}

const COLUMNS = `assignment_id, client_id, domain_id, service_id, scope, key, model_id,
  model_version, status, config, priority, metadata, created_at, archived_at`;

// Matches the expression of the assignments indexes; service ids are never empty, so '' is the
// domain scope.
const IN_PLACE = `client_id = $1 and domain_id = $2 and coalesce(service_id, '') = $3`;

// A key's current revision: its active one, else its newest.
const CURRENT_FIRST = `(status = 'active') desc, created_at desc, assignment_id desc`;

function toAssignment(row: AssignmentRow): Assignment {
  return { ...row, created_at: iso(row.created_at), archived_at: isoOrNull(row.archived_at) };
}

function placeValues(place: AssignmentPlace): string[] {
  return [place.clientId, place.domainId, place.serviceId ?? ''];
}

export async function findCurrentRevision(
  q: Queryable,
  place: AssignmentPlace,
  key: string,
): Promise<Assignment | undefined> {
  const { rows } = await q.query<AssignmentRow>(
    `select ${COLUMNS} from assignments
     where ${IN_PLACE} and key = $4
     order by ${CURRENT_FIRST}
     limit 1`,
    [...placeValues(place), key],
  );
  return rows[0] && toAssignment(rows[0]);
}

export interface RevisionWrite {
  key: string;
  modelId: string;
  modelVersion: string;
  status: AssignmentStatus;
  config: Record<string, unknown>;
  priority: number;
  metadata: Record<string, unknown>;
}

/**
 * Inserts a revision; an archived one is born retired (`archived_at` set). Times come from
 * clock_timestamp(), not now(): revisions of a key are written one after another under the
 * domain lock, so the newest revision must carry the latest time even when its transaction
 * began before the previous writer's.
 */
export async function insertRevision(
  q: Queryable,
  place: AssignmentPlace,
  write: RevisionWrite,
): Promise<Assignment> {
  const { rows } = await q.query<AssignmentRow>(
    `insert into assignments (client_id, domain_id, service_id, scope, key, model_id,
       model_version, status, config, metadata, created_at, archived_at, priority)
     select $1, $2, $3, case when $3::text is null then 'domain' else 'service' end, $4, $5, $6,
       $7, $8::jsonb, $9::jsonb, t.ts, case when $7 = 'archived' then t.ts end, $10
     from (select clock_timestamp() as ts) t
     returning ${COLUMNS}`,
    [
      place.clientId,
      place.domainId,
      place.serviceId,
      write.key,
      write.modelId,
      write.modelVersion,
      write.status,
      json(write.config),
      json(write.metadata),
      write.priority,
    ],
  );
  return toAssignment(rows[0]!);
}

export async function archiveRevision(
  q: Queryable,
  clientId: string,
  assignmentId: string,
): Promise<void> {
  await q.query(
    `update assignments set status = 'archived', archived_at = clock_timestamp()
     where client_id = $1 and assignment_id = $2 and status = 'active'`,
    [clientId, assignmentId],
  );
}

/** The current revision of each key in a place, by key; `status` filters on that revision. */
export async function listCurrentRevisions(
  q: Queryable,
  place: AssignmentPlace,
  filter: { status?: AssignmentStatus | undefined },
  page: PageRequest,
): Promise<Assignment[]> {
  const { rows } = await q.query<AssignmentRow>(
    `select ${COLUMNS} from (
       select distinct on (key) ${COLUMNS} from assignments
       where ${IN_PLACE} and ($4::text is null or key > $4)
       order by key, ${CURRENT_FIRST}
     ) current
     where $5::text is null or status = $5
     order by key
     limit $6`,
    [...placeValues(place), page.after?.[0] ?? null, filter.status ?? null, page.limit + 1],
  );
  return rows.map(toAssignment);
}

/**
 * Every revision of a key, newest first. The cursor is the last revision's id; its position is
 * looked up, so the page boundary keeps the database's full timestamp precision.
 */
export async function listRevisions(
  q: Queryable,
  place: AssignmentPlace,
  key: string,
  page: PageRequest,
): Promise<Assignment[]> {
  const { rows } = await q.query<AssignmentRow>(
    `select ${COLUMNS} from assignments
     where ${IN_PLACE} and key = $4
       and ($5::uuid is null or (created_at, assignment_id) < (
         select created_at, assignment_id from assignments
         where client_id = $1 and assignment_id = $5::uuid))
     order by created_at desc, assignment_id desc
     limit $6`,
    [...placeValues(place), key, page.after?.[0] ?? null, page.limit + 1],
  );
  return rows.map(toAssignment);
}

export interface DomainDefaultContract {
  assignment_id: string;
  model_id: string;
  model_version: string;
  features: FeatureDefinition[];
}

/**
 * The contract that governs a domain's services: the features of the model version behind the
 * domain's active `default` assignment, or undefined when the domain has none.
 */
export async function findDomainDefaultContract(
  q: Queryable,
  clientId: string,
  domainId: string,
): Promise<DomainDefaultContract | undefined> {
  const { rows } = await q.query<DomainDefaultContract>(
    `select a.assignment_id, a.model_id, a.model_version, v.features
     from assignments a
     join model_versions v on v.model_id = a.model_id and v.model_version = a.model_version
     where a.client_id = $1 and a.domain_id = $2 and a.service_id is null
       and a.key = 'default' and a.status = 'active'`,
    [clientId, domainId],
  );
  return rows[0];
}

// The services a domain default governs. These statements touch the services table but belong
// to the default upsert, which is their only caller.

export interface GovernedService {
  service_id: string;
  provided_features: FeatureValues;
  resolved_features: FeatureValues | null;
}

/** Every non-departed service of a domain, locked for update until the transaction ends. */
export async function lockGovernedServices(
  q: Queryable,
  clientId: string,
  domainId: string,
): Promise<GovernedService[]> {
  const { rows } = await q.query<GovernedService>(
    `select service_id, provided_features, resolved_features from services
     where client_id = $1 and domain_id = $2 and status <> 'departed'
     order by service_id
     for no key update`,
    [clientId, domainId],
  );
  return rows;
}

/** The status of each named service that exists in the domain. */
export async function findServiceStatuses(
  q: Queryable,
  clientId: string,
  domainId: string,
  serviceIds: readonly string[],
): Promise<Map<string, string>> {
  const { rows } = await q.query<{ service_id: string; status: string }>(
    `select service_id, status from services
     where client_id = $1 and domain_id = $2
       and service_id in (select jsonb_array_elements_text($3::jsonb))`,
    [clientId, domainId, json(serviceIds)],
  );
  return new Map(rows.map((row) => [row.service_id, row.status]));
}

export interface ServiceFeaturesWrite {
  service_id: string;
  provided_features: FeatureValues;
  resolved_features: FeatureValues | null;
}

/** Writes many services' features in one statement, however many there are. */
export async function writeServiceFeatures(
  q: Queryable,
  clientId: string,
  domainId: string,
  writes: readonly ServiceFeaturesWrite[],
): Promise<void> {
  if (writes.length === 0) return;
  await q.query(
    `update services s
     set provided_features = u.provided_features,
         resolved_features = u.resolved_features,
         updated_at = now()
     from jsonb_to_recordset($3::jsonb)
       as u(service_id text, provided_features jsonb, resolved_features jsonb)
     where s.client_id = $1 and s.domain_id = $2 and s.service_id = u.service_id`,
    [clientId, domainId, json(writes)],
  );
}

/** Clears every service's resolved_features: no contract governs the domain any more. */
export async function clearResolvedFeatures(
  q: Queryable,
  clientId: string,
  domainId: string,
): Promise<void> {
  await q.query(
    `update services set resolved_features = null, updated_at = now()
     where client_id = $1 and domain_id = $2 and resolved_features is not null`,
    [clientId, domainId],
  );
}
