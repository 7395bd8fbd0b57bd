import type { Caller } from '../auth/caller.js';
import { conflict, notFound } from '../domain/errors.js';
import {
  type PageRequest,
  type PageResult,
  requireCastableCursor,
  toPage,
} from '../domain/paging.js';
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
  requireCastableCursor(page.after, ['time', 'text']);
  await requireDomain(ctx.db, clientId, domainId);
  const rows = await jobs.listJobs(ctx.db.reads, clientId, domainId, filter, page);
  return toPage(rows, page.limit, (job) => [job.created_at, job.job_id]);
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
