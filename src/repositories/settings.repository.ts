import type { Queryable } from '../db/database.js';

/** Reads a shared setting, storing `initial` first if none exists (the first process wins). */
export async function getOrCreateSetting(
  q: Queryable,
  name: string,
  initial: string,
): Promise<string> {
  const { rows } = await q.query<{ value: string }>(
    `with created as (
       insert into pie_settings (name, value) values ($1, $2)
       on conflict (name) do nothing
       returning value
     )
     select value from created
     union all
     select value from pie_settings where name = $1
     limit 1`,
    [name, initial],
  );
  if (rows[0] !== undefined) return rows[0].value;
  // Another process inserted it at the same moment: our insert waited for theirs and did
  // nothing, and this statement's snapshot predates their commit. A new statement sees it.
  const again = await q.query<{ value: string }>('select value from pie_settings where name = $1', [
    name,
  ]);
  return again.rows[0]!.value;
}
