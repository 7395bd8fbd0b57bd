import type { Caller } from '../auth/caller.js';
import type { Queryable } from '../db/database.js';
import { cronProblems, CronSchedule, timeZoneProblems } from '../domain/cron-schedule.js';
import { badRequest, forbidden, notFound, unprocessable } from '../domain/errors.js';
import { type PageRequest, type PageResult, toPage } from '../domain/paging.js';
import {
  databaseNow,
  deleteSchedule as deleteScheduleRow,
  findSchedule,
  insertSchedule,
  listSchedules as listScheduleRows,
  updateSchedule,
  type Schedule,
  type ScheduleAction,
  type ScheduleKey,
  type ScheduleStatus,
  type ScheduleWrite,
} from '../repositories/schedules.repository.js';
import { findService } from '../repositories/services.repository.js';
import type { AppContext } from './context.js';
import { requireDomain } from './tenant-lookup.js';

export type { Schedule, ScheduleKey } from '../repositories/schedules.repository.js';

export type ScheduleActionBody =
  | { type: 'services_init' }
  | {
      type: 'run_job';
      assignment_key: string;
      service_id?: string;
      job_type?: string;
      input?: Record<string, unknown>;
    };

/** A PUT body: every field may be left out of an update, which then keeps what it had. */
export interface PutScheduleBody {
  cron?: string;
  timezone?: string;
  action?: ScheduleActionBody;
  priority?: number | null;
  status?: ScheduleStatus;
}

/**
 * Creates or replaces a schedule. Checked in the contract's order: the cron and time zone
 * given (400), the token's models claim (403), the tenant path (404), a new schedule naming its
 * cron and action (400), the action's service existing in the domain (422).
 *
 * The tick it owes (next_run_at): none while paused; the first tick after now when it is
 * created, resumed, or given another cron or time zone; otherwise the one it already owed, so
 * that re-sending a schedule, or changing only its action or priority, neither skips nor
 * repeats a tick.
 */
export async function putSchedule(
  ctx: AppContext,
  caller: Caller,
  input: { key: ScheduleKey; body: PutScheduleBody },
): Promise<{ created: boolean; schedule: Schedule }> {
  const { key, body } = input;
  const problems = [
    ...(body.cron === undefined ? [] : cronProblems(body.cron)),
    ...(body.timezone === undefined ? [] : timeZoneProblems(body.timezone)),
  ];
  if (problems.length > 0) throw badRequest(problems.join('; '));
  requireEveryModel(caller);
  return ctx.db.transaction(async (tx) => {
    await requireDomain(tx, key.clientId, key.domainId);
    // Two requests creating one name at once: the second insert finds the first's row, and
    // the loop goes round once more to update it under its lock.
    for (;;) {
      const existing = await findSchedule(tx, key, { forUpdate: true });
      const write = await scheduleWrite(tx, key, existing, body);
      if (existing !== undefined) {
        return { created: false, schedule: await updateSchedule(tx, key, write) };
      }
      const inserted = await insertSchedule(tx, key, write);
      if (inserted !== undefined) return { created: true, schedule: inserted };
    }
  });
}

/** The schedule a PUT leaves: the body over what is stored, checked, with the tick it owes. */
async function scheduleWrite(
  tx: Queryable,
  key: ScheduleKey,
  existing: Schedule | undefined,
  body: PutScheduleBody,
): Promise<ScheduleWrite> {
  const cron = body.cron ?? existing?.cron;
  const action = body.action === undefined ? existing?.action : normalAction(body.action);
  if (cron === undefined || action === undefined) {
    const missing = [cron === undefined && 'cron', action === undefined && 'action'];
    throw badRequest(
      `schedule "${key.name}" does not exist yet; creating it needs ` +
        missing.filter(Boolean).join(' and '),
    );
  }
  const timezone = body.timezone ?? existing?.timezone ?? 'UTC';
  const status = body.status ?? existing?.status ?? 'active';
  const priority = body.priority === undefined ? (existing?.priority ?? null) : body.priority;
  if (action.type === 'run_job' && action.service_id !== null) {
    // Departed services are accepted, as by subscriptions: they may come back.
    const service = await findService(tx, key.clientId, key.domainId, action.service_id);
    if (service === undefined) {
      throw unprocessable(
        `action service "${action.service_id}" not found in domain "${key.domainId}"`,
      );
    }
  }
  const parsed = CronSchedule.parse(cron, timezone);
  // Both were checked when given, and stored ones were checked when they were written.
  if (!parsed.ok) throw badRequest(parsed.problems.join('; '));
  let nextRunAt: Date | null = null;
  if (status === 'active') {
    const owed =
      existing?.status === 'active' && existing.cron === cron && existing.timezone === timezone
        ? existing.next_run_at
        : null;
    nextRunAt = owed === null ? parsed.schedule.nextAfter(await databaseNow(tx)) : new Date(owed);
  }
  return { cron, timezone, action, priority, status, nextRunAt };
}

/** The action as stored and answered: every field present, defaults filled in. */
function normalAction(action: ScheduleActionBody): ScheduleAction {
  switch (action.type) {
    case 'services_init':
      return { type: 'services_init' };
    case 'run_job':
      return {
        type: 'run_job',
        assignment_key: action.assignment_key,
        service_id: action.service_id ?? null,
        job_type: action.job_type ?? 'inference',
        input: action.input ?? {},
      };
  }
}

export async function getSchedule(
  ctx: AppContext,
  _caller: Caller,
  key: ScheduleKey,
): Promise<Schedule> {
  return (await findSchedule(ctx.db, key)) ?? scheduleNotFound(ctx.db, key);
}

export async function listSchedules(
  ctx: AppContext,
  _caller: Caller,
  input: {
    clientId: string;
    domainId: string;
    filter: { status?: ScheduleStatus | undefined };
    page: PageRequest;
  },
): Promise<PageResult<Schedule>> {
  const { clientId, domainId, filter, page } = input;
  await requireDomain(ctx.db, clientId, domainId);
  const rows = await listScheduleRows(ctx.db.reads, clientId, domainId, filter, page);
  return toPage(rows, page.limit, (row) => [row.name]);
}

/** Deletes a schedule for good; the jobs its ticks started are kept. */
export async function deleteSchedule(
  ctx: AppContext,
  caller: Caller,
  key: ScheduleKey,
): Promise<void> {
  requireEveryModel(caller);
  if (!(await deleteScheduleRow(ctx.db, key))) await scheduleNotFound(ctx.db, key);
}

/**
 * A schedule starts jobs with its tenant's rights, on whatever model the assignment names at
 * each tick; a token limited to some models could otherwise reach others through one.
 */
function requireEveryModel(caller: Caller) {
  if (caller.models !== '*') {
    throw forbidden(
      'a schedule runs jobs on every model of its client, so writing one needs a token ' +
        'whose models claim is "*"',
    );
  }
}

async function scheduleNotFound(q: Queryable, key: ScheduleKey): Promise<never> {
  await requireDomain(q, key.clientId, key.domainId);
  throw notFound(`schedule "${key.name}" not found in domain "${key.domainId}"`);
}
