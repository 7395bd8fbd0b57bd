import type { Caller } from '../auth/caller.js';
import { badRequest, conflict, notFound } from '../domain/errors.js';
import { type PageRequest, type PageResult, toPage } from '../domain/paging.js';
import { cancel } from '../lifecycle/finish.js';
import * as jobs from '../repositories/jobs.repository.js';
import type { AppContext } from './context.js';
import { requireDomain } from './tenant-lookup.js';

export interface JobRef {
  clientId: string;
  domainId: string;
  jobId: string;
}

export async function getJob(ctx: AppContext, _caller: Caller, input: JobRef): Promise<jobs.Job> {
  const { clientId, domainId, jobId } = input;
  const job = await jobs.findJob(ctx.db, clientId, domainId, jobId);
  if (job !== undefined) return job;
  await requireDomain(ctx.db, clientId, domainId);
  throw notFound(`job "${jobId}" not found in domain "${domainId}"`);
}

export interface ListJobsInput {
  clientId: string;
  domainId: string;
  filter: jobs.JobFilter;
  page: PageRequest;
}

/** A domain's jobs, newest first, a page at a time. */
export async function listJobs(
  ctx: AppContext,
  _caller: Caller,
  input: ListJobsInput,
): Promise<PageResult<jobs.Job>> {
  const { clientId, domainId, filter, page } = input;
  requireSortTime(page.after);
  await requireDomain(ctx.db, clientId, domainId);
  const rows = await jobs.listJobs(ctx.db, clientId, domainId, filter, page);
  return toPage(rows, page.limit, (job) => [job.created_at, job.job_id]);
}

// PostgreSQL has no year 0 (1 BC comes before 1 AD), though JavaScript dates do.
const SORT_TIME = /^(?!0000)\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/**
 * A decoded cursor's time goes into SQL as a timestamptz; a forged one PostgreSQL could not
 * cast (month 13, year 0) must be a 400, not a 500.
 */
export function requireSortTime(after: string[] | undefined) {
  if (after === undefined) return;
  const createdAt = after[0] ?? '';
  const time = Date.parse(createdAt);
  if (
    !SORT_TIME.test(createdAt) ||
    Number.isNaN(time) ||
    // Catches well-formed but impossible dates such as February 30.
    new Date(time).toISOString() !== createdAt
  ) {
    throw badRequest('cursor is not valid; pass the next_cursor of a previous page');
  }
}

/** Cancels a job that is not final. Cancelling a cancelled job again answers it unchanged. */
export async function cancelJob(ctx: AppContext, caller: Caller, input: JobRef): Promise<jobs.Job> {
  const { clientId, domainId, jobId } = input;
  const cancelled = await ctx.events.afterCommit((emit) =>
    cancel(ctx.db, emit, clientId, domainId, jobId),
  );
  if (cancelled !== undefined) return cancelled;
  const job = await getJob(ctx, caller, input);
  if (job.status === 'cancelled') return job;
  throw conflict(`job "${jobId}" already finished with status "${job.status}"`);
}
