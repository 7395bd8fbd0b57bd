import type { Queryable } from '../db/database.js';
import type { FeatureDefinition } from '../domain/features.js';
import type { Handler } from '../domain/handlers.js';
import type { PageRequest } from '../domain/paging.js';
import { iso, json } from './rows.js';

export interface ModelVersion {
  model_id: string;
  model_version: string;
  features: FeatureDefinition[];
  job_types: string[];
  handler: Handler;
  timeout_s: number;
  max_attempts: number;
  /** Dispatched and running jobs of this version at most, all tenants; null is unlimited. */
  max_in_flight: number | null;
  created_at: string;
  updated_at: string;
}

interface VersionRow extends Omit<ModelVersion, 'created_at' | 'updated_at'> {
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = `model_id, model_version, features, job_types, handler, timeout_s, max_attempts,
  max_in_flight, created_at, updated_at`;

function toVersion(row: VersionRow): ModelVersion {
  return { ...row, created_at: iso(row.created_at), updated_at: iso(row.updated_at) };
}

export interface VersionWrite {
  modelId: string;
  modelVersion: string;
  features: FeatureDefinition[];
  jobTypes: string[];
  handler: Handler;
  timeoutS: number;
  maxAttempts: number;
  maxInFlight: number | null;
}

/** Inserts a new version; undefined when it already exists (the caller then compares). */
export async function insertVersion(
  q: Queryable,
  write: VersionWrite,
): Promise<ModelVersion | undefined> {
  const { rows } = await q.query<VersionRow>(
    `insert into model_versions
       (model_id, model_version, features, job_types, handler, timeout_s, max_attempts,
        max_in_flight)
     values ($1, $2, $3::jsonb, $4::jsonb, $5::jsonb, $6, $7, $8)
     on conflict (model_id, model_version) do nothing
     returning ${COLUMNS}`,
    [
      write.modelId,
      write.modelVersion,
      json(write.features),
      json(write.jobTypes),
      json(write.handler),
      write.timeoutS,
      write.maxAttempts,
      write.maxInFlight,
    ],
  );
  return rows[0] && toVersion(rows[0]);
}

/** Updates the settings that may change after a version is frozen. */
export async function updateVersionSettings(
  q: Queryable,
  modelId: string,
  modelVersion: string,
  settings: {
    handler?: Handler;
    timeoutS?: number;
    maxAttempts?: number;
    /** undefined keeps the limit; null removes it. */
    maxInFlight?: number | null;
  },
): Promise<ModelVersion> {
  const { rows } = await q.query<VersionRow>(
    // Queued jobs follow the version's handler: they are claimed by its kind.
    `with requeued as (
       update jobs set handler_type = $3::jsonb->>'type'
       where $3::jsonb is not null and model_id = $1 and model_version = $2 and status = 'queued'
         and handler_type <> $3::jsonb->>'type'
     )
     update model_versions
     set handler = coalesce($3::jsonb, handler),
         timeout_s = coalesce($4, timeout_s),
         max_attempts = coalesce($5, max_attempts),
         max_in_flight = case when $6 then $7::integer else max_in_flight end,
         updated_at = now()
     where model_id = $1 and model_version = $2
     returning ${COLUMNS}`,
    [
      modelId,
      modelVersion,
      settings.handler === undefined ? null : json(settings.handler),
      settings.timeoutS ?? null,
      settings.maxAttempts ?? null,
      settings.maxInFlight !== undefined,
      settings.maxInFlight ?? null,
    ],
  );
  return toVersion(rows[0]!);
}

export async function findVersion(
  q: Queryable,
  modelId: string,
  modelVersion: string,
  options: { forUpdate?: boolean } = {},
): Promise<ModelVersion | undefined> {
  const { rows } = await q.query<VersionRow>(
    `select ${COLUMNS} from model_versions where model_id = $1 and model_version = $2
     ${options.forUpdate === true ? 'for update' : ''}`,
    [modelId, modelVersion],
  );
  return rows[0] && toVersion(rows[0]);
}

export async function listVersions(
  q: Queryable,
  modelId: string,
  page: PageRequest,
): Promise<ModelVersion[]> {
  const { rows } = await q.query<VersionRow>(
    `select ${COLUMNS} from model_versions
     where model_id = $1 and ($2::text is null or model_version > $2)
     order by model_version
     limit $3`,
    [modelId, page.after?.[0] ?? null, page.limit + 1],
  );
  return rows.map(toVersion);
}
