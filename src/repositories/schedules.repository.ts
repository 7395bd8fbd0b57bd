import type { Queryable } from '../db/database.js';
import type { PageRequest } from '../domain/paging.js';
import { iso, isoOrNull, json } from './rows.js';

export type ScheduleStatus = 'active' | 'paused';

/** What a tick does: services init, or one job through an assignment. */
export type ScheduleAction =
  | { type: 'services_init' }
  | {
      type: 'run_job';
      assignment_key: string;
      /** null runs a domain-scope job. */
      service_id: string | null;
      job_type: string;
      input: Record<string, unknown>;
    };

export interface Schedule {
  client_id: string;
  domain_id: string;
  name: string;
  cron: string;
  timezone: string;
  action: ScheduleAction;
  /** The priority of the jobs a tick starts; null takes the assignment's. */
  priority: number | null;
  status: ScheduleStatus;
  /** The tick owed; null while paused. */
  next_run_at: string | null;
  last_run_at: string | null;
  last_batch_id: string | null;
  last_job_id: string | null;
  last_error: string | null;
  created_at: string;
  updated_at: string;
}

export interface ScheduleKey {
  clientId: string;
  domainId: string;
  name: string;
}

/** What a PUT writes: the definition, and the tick it owes from now on. */
export interface ScheduleWrite {
  cron: string;
  timezone: string;
  action: ScheduleAction;
  priority: number | null;
  status: ScheduleStatus;
  nextRunAt: Date | null;
}

interface ScheduleRow {
  client_id: string;
  domain_id: string;
  name: string;
  cron: string;
  timezone: string;
  action: ScheduleAction;
  priority: number | null;
  status: ScheduleStatus;
  next_run_at: Date | null;
  last_run_at: Date | null;
  last_batch_id: string | null;
  last_job_id: string | null;
  last_error: string | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = `client_id, domain_id, name, cron, timezone, action, priority, status,
  next_run_at, last_run_at, last_batch_id, last_job_id, last_error, created_at, updated_at`;

function toSchedule(row: ScheduleRow): Schedule {
  return {
    ...row,
    next_run_at: isoOrNull(row.next_run_at),
    last_run_at: isoOrNull(row.last_run_at),
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
  };
}

/** The database's clock, which the scheduler's scan compares ticks against. */
export async function databaseNow(q: Queryable): Promise<Date> {
  const { rows } = await q.query<{ now: Date }>('select now() as now');
  return rows[0]!.now;
}

export async function findSchedule(
  q: Queryable,
  key: ScheduleKey,
  options: { forUpdate?: boolean } = {},
): Promise<Schedule | undefined> {
  const { rows } = await q.query<ScheduleRow>(
    `select ${COLUMNS} from schedules where client_id = $1 and domain_id = $2 and name = $3
     ${options.forUpdate === true ? 'for update' : ''}`,
    [key.clientId, key.domainId, key.name],
  );
  return rows[0] && toSchedule(rows[0]);
}

/** Inserts a new schedule; undefined when one of that name appeared meanwhile. */
export async function insertSchedule(
  q: Queryable,
  key: ScheduleKey,
  write: ScheduleWrite,
): Promise<Schedule | undefined> {
  const { rows } = await q.query<ScheduleRow>(
    `insert into schedules (client_id, domain_id, name, cron, timezone, action, priority, status,
       next_run_at)
     values ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9)
     on conflict (client_id, domain_id, name) do nothing
     returning ${COLUMNS}`,
    [key.clientId, key.domainId, key.name, ...definition(write)],
  );
  return rows[0] && toSchedule(rows[0]);
}

/** Replaces a schedule's definition and the tick it owes; its last_* stay as they were. */
export async function updateSchedule(
  q: Queryable,
  key: ScheduleKey,
  write: ScheduleWrite,
): Promise<Schedule> {
  const { rows } = await q.query<ScheduleRow>(
    `update schedules
     set cron = $4, timezone = $5, action = $6::jsonb, priority = $7, status = $8,
         next_run_at = $9, updated_at = date_trunc('milliseconds', now())
     where client_id = $1 and domain_id = $2 and name = $3
     returning ${COLUMNS}`,
    [key.clientId, key.domainId, key.name, ...definition(write)],
  );
  return toSchedule(rows[0]!);
}

function definition(write: ScheduleWrite): unknown[] {
  return [
    write.cron,
    write.timezone,
    json(write.action),
    write.priority,
    write.status,
    write.nextRunAt?.toISOString() ?? null,
  ];
}

/** In name order; `page.after` is the name of the last schedule of the previous page. */
export async function listSchedules(
  q: Queryable,
  clientId: string,
  domainId: string,
  filter: { status?: ScheduleStatus | undefined },
  page: PageRequest,
): Promise<Schedule[]> {
  const { rows } = await q.query<ScheduleRow>(
    `select ${COLUMNS} from schedules
     where client_id = $1 and domain_id = $2
       and ($3::text is null or status = $3)
       and ($4::text is null or name > $4)
     order by name
     limit $5`,
    [clientId, domainId, filter.status ?? null, page.after?.[0] ?? null, page.limit + 1],
  );
  return rows.map(toSchedule);
}

/** Deletes a schedule; false when there was none. */
export async function deleteSchedule(q: Queryable, key: ScheduleKey): Promise<boolean> {
  const { rowCount } = await q.query(
    'delete from schedules where client_id = $1 and domain_id = $2 and name = $3',
    [key.clientId, key.domainId, key.name],
  );
  return rowCount > 0;
}
