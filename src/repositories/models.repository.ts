import type { Grant } from '../auth/caller.js';
import type { Queryable } from '../db/database.js';
import type { PageRequest } from '../domain/paging.js';
import { iso } from './rows.js';

export interface Model {
  model_id: string;
  description: string | null;
  created_at: string;
  updated_at: string;
}

interface ModelRow extends Omit<Model, 'created_at' | 'updated_at'> {
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = 'model_id, description, created_at, updated_at';

function toModel(row: ModelRow): Model {
  return { ...row, created_at: iso(row.created_at), updated_at: iso(row.updated_at) };
}

/** Creates or updates a model; `description` undefined keeps the stored one. */
export async function upsertModel(
  q: Queryable,
  modelId: string,
  description: string | undefined,
): Promise<{ model: Model; created: boolean }> {
  const { rows } = await q.query<ModelRow & { created: boolean }>(
    `insert into models (model_id, description) values ($1, $2)
     on conflict (model_id) do update
       set description = case when $3 then excluded.description else models.description end,
           updated_at = now()
     returning ${COLUMNS}, (xmax = 0) as created`,
    [modelId, description ?? null, description !== undefined],
  );
  const row = rows[0]!;
  return { model: toModel(row), created: row.created };
}

export async function findModel(q: Queryable, modelId: string): Promise<Model | undefined> {
  const { rows } = await q.query<ModelRow>(`select ${COLUMNS} from models where model_id = $1`, [
    modelId,
  ]);
  return rows[0] && toModel(rows[0]);
}

export async function listModels(
  q: Queryable,
  visible: Grant,
  page: PageRequest,
): Promise<Model[]> {
  const { rows } = await q.query<ModelRow>(
    `select ${COLUMNS} from models
     where ($1::jsonb is null or $1::jsonb ? model_id)
       and ($2::text is null or model_id > $2)
     order by model_id
     limit $3`,
    [visible === '*' ? null : JSON.stringify(visible), page.after?.[0] ?? null, page.limit + 1],
  );
  return rows.map(toModel);
}
