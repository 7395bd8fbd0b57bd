import { conflict, notFound } from '../http/errors.js';
import { type PageRequest, toPage } from '../http/paging.js';
import * as jobs from '../repositories/jobs.repository.js';
import type { AppContext } from './context.js';
import { requireDomain } from './tenant-lookup.js';

export async function getJob(ctx: AppContext, clientId: string, domainId: string, jobId: string) {
  const job = await jobs.findJob(ctx.db, clientId, domainId, jobId);
  if (job !== undefined) return job;
  await requireDomain(ctx.db, clientId, domainId);
  throw notFound(`job "${jobId}" not found in domain "${domainId}"`);
}

export async function listJobs(
  ctx: AppContext,
  clientId: string,
  domainId: string,
  filter: jobs.JobFilter,
  page: PageRequest,
) {
  await requireDomain(ctx.db, clientId, domainId);
  const rows = await jobs.listJobs(ctx.db, clientId, domainId, filter, page);
  return toPage(rows, page.limit, (job) => [job.created_at, job.job_id]);
}

/** Cancels a job that is not final. Cancelling a cancelled job again answers it unchanged. */
export async function cancelJob(
  ctx: AppContext,
  clientId: string,
  domainId: string,
  jobId: string,
) {
  const cancelled = await jobs.cancelOpenJob(ctx.db, clientId, domainId, jobId);
  if (cancelled !== undefined) return cancelled;
  const job = await getJob(ctx, clientId, domainId, jobId);
  if (job.status === 'cancelled') return job;
  throw conflict(`job "${jobId}" already finished with status "${job.status}"`);
}
