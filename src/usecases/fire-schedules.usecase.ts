import { tenantAgent } from '../auth/caller.js';
import { isDatabaseUnavailable } from '../db/connection-errors.js';
import type { Queryable } from '../db/database.js';
import { CronSchedule } from '../domain/cron-schedule.js';
import { AppError } from '../domain/errors.js';
import type { EmitJobEvent, JobEvent } from '../lifecycle/job-events.js';
import {
  claimTick,
  listDueSchedules,
  recordTick,
  type ClaimedTick,
  type DueSchedule,
  type TickRecord,
} from '../repositories/schedule-ticks.repository.js';
import { withSpan } from '../observability/tracing.js';
import type { AppContext } from './context.js';
import { startServicesInit } from './init-services.usecase.js';
import { startJob } from './start-job.js';

/** What firing one tick did, once it committed. */
export interface FiredTick {
  schedule: DueSchedule;
  outcome: 'fired' | 'failed';
  /** From the tick's time to the firing, on the database's clock. */
  lateS: number;
  /** The tick after it had come too: ticks were missed, and this one firing stands for them. */
  caughtUp: boolean;
  /** An error that was not PIE's to expect (not an AppError), for the caller to log. */
  fault?: unknown;
}

/** What a tick's action started, or why it started nothing. */
type ActionResult =
  | { ok: true; jobs: number; jobId?: string; batchId?: string | null; events: JobEvent[] }
  | { ok: false; message: string; fault?: unknown };

/** A tick that could not be fired or recorded, so it stays owed and is tried again. */
export interface UnfiredTick {
  schedule: DueSchedule;
  error: unknown;
}

/**
 * Fires the ticks that have come, at most `limit`, most overdue first. Any number of processes
 * may run this at once: each tick fires in exactly one of them (see migration 000012). A tick
 * whose transaction fails for a reason other than the database being away is passed over, so
 * that it cannot hold back the ticks behind it; the database being away ends the turn.
 */
export async function fireDueSchedules(
  ctx: AppContext,
  limit: number,
): Promise<{ fired: FiredTick[]; unfired: UnfiredTick[] }> {
  const fired: FiredTick[] = [];
  const unfired: UnfiredTick[] = [];
  for (const schedule of await listDueSchedules(ctx.db, limit)) {
    try {
      // Each tick is a trace of its own, which the jobs it starts continue (their
      // traceparent), as a request's jobs continue the request's.
      const tick = await withSpan(
        'pie.schedule.tick',
        {
          parent: null,
          attributes: () => ({
            'pie.client_id': schedule.clientId,
            'pie.domain_id': schedule.domainId,
            'pie.schedule': schedule.name,
          }),
        },
        () => fireTick(ctx, schedule),
      );
      if (tick !== undefined) fired.push(tick);
    } catch (error) {
      if (isDatabaseUnavailable(error)) throw error;
      unfired.push({ schedule, error });
    }
  }
  return { fired, unfired };
}

/**
 * One tick in one transaction: claim it, run the action, move the schedule to its next tick
 * and record the outcome. An action that fails (an AppError: a departed service, an inactive
 * domain, no assignment, the open-jobs quota) is undone alone, back to a savepoint, and
 * recorded in last_error; the next tick is owed all the same. A database fault undoes the
 * whole transaction, so the tick stays owed and fires once the database answers. Undefined
 * when another process fired the tick, or it is no longer owed.
 */
async function fireTick(ctx: AppContext, schedule: DueSchedule): Promise<FiredTick | undefined> {
  // Asked before the transaction: a count the quota may need must not wait behind it.
  const admission = await ctx.openJobs.admit(schedule.clientId);
  let started = 0;
  try {
    const tick = await ctx.events.afterCommit((emit) =>
      ctx.db.transaction(async (tx) => {
        const claimed = await claimTick(tx, schedule);
        if (claimed === undefined) return undefined;
        const cron = CronSchedule.parse(claimed.cron, claimed.timezone);
        const result: ActionResult = !cron.ok
          ? { ok: false, message: cron.problems.join('; ') }
          : admission === undefined
            ? { ok: false, message: quotaMessage(ctx, schedule.clientId) }
            : await runActionAtSavepoint(ctx, tx, schedule, claimed);
        const next = cron.ok ? cron.schedule.nextAfter(claimed.now) : null;
        const record: TickRecord = result.ok
          ? { next, error: null, jobId: result.jobId, batchId: result.batchId }
          : { next, error: result.message };
        if (!(await recordTick(tx, schedule, record))) {
          throw new Error(`schedule "${schedule.name}" moved on while its tick was locked`);
        }
        if (result.ok) for (const event of result.events) emit(event);
        const followingTick = cron.ok ? cron.schedule.nextAfter(schedule.due) : null;
        return {
          tick: {
            schedule,
            outcome: result.ok ? 'fired' : 'failed',
            lateS: (claimed.now.getTime() - schedule.due.getTime()) / 1000,
            caughtUp: followingTick !== null && followingTick <= claimed.now,
            ...(!result.ok && result.fault !== undefined && { fault: result.fault }),
          } satisfies FiredTick,
          jobs: result.ok ? result.jobs : 0,
        };
      }),
    );
    if (tick === undefined) return undefined;
    started = tick.jobs;
    countTick(ctx, tick.tick);
    return tick.tick;
  } finally {
    admission?.settle(started);
  }
}

/**
 * Runs the action behind a savepoint, so that its failure undoes its own writes only. The
 * action's job events are held until it has succeeded.
 */
async function runActionAtSavepoint(
  ctx: AppContext,
  tx: Queryable,
  schedule: DueSchedule,
  claimed: ClaimedTick,
): Promise<ActionResult> {
  await tx.query('savepoint schedule_action');
  const events: JobEvent[] = [];
  try {
    const started = await runAction(ctx, tx, schedule, claimed, (event) => events.push(event));
    await tx.query('release savepoint schedule_action');
    return { ok: true, ...started, events };
  } catch (error) {
    if (isDatabaseUnavailable(error)) throw error;
    await tx.query('rollback to savepoint schedule_action');
    if (error instanceof AppError) return { ok: false, message: error.message };
    return {
      ok: false,
      message: "the action failed unexpectedly; PIE's log has the error",
      fault: error,
    };
  }
}

async function runAction(
  ctx: AppContext,
  tx: Queryable,
  schedule: DueSchedule,
  claimed: ClaimedTick,
  emit: EmitJobEvent,
): Promise<{ jobs: number; jobId?: string; batchId?: string | null }> {
  const { clientId, domainId, name } = schedule;
  const caller = tenantAgent(`schedule:${clientId}/${domainId}/${name}`, clientId);
  const priority = claimed.priority ?? undefined;
  const action = claimed.action;
  switch (action.type) {
    case 'services_init': {
      const init = await startServicesInit(
        tx,
        caller,
        { clientId, domainId, kind: 'schedule', priority },
        emit,
      );
      return { jobs: init.body.dispatched_services.length, batchId: init.body.batch_id };
    }
    case 'run_job': {
      const started = await startJob(
        tx,
        {
          clientId,
          domainId,
          serviceId: action.service_id,
          key: action.assignment_key,
          jobType: action.job_type,
          input: action.input,
          subscribe: false,
          trigger: null,
          lineage: [],
          models: caller.models,
          priority,
        },
        { targets: ctx.jobTargets },
      );
      emit({ type: 'queued', jobType: action.job_type, count: 1, wake: started.wake });
      return { jobs: 1, jobId: started.job_id };
    }
  }
}

function quotaMessage(ctx: AppContext, clientId: string): string {
  return (
    `client "${clientId}" has reached its quota of ${ctx.openJobs.limit} open jobs ` +
    '(queued, dispatched or running); the tick started nothing'
  );
}

function countTick(ctx: AppContext, tick: FiredTick): void {
  ctx.metrics.scheduleTicks.inc({ outcome: tick.outcome });
  ctx.metrics.scheduleTickLateness.observe(Math.max(0, tick.lateS));
  if (tick.caughtUp) ctx.metrics.scheduleTicksLate.inc();
}
