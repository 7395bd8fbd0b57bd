import type { Caller } from '../auth/caller.js';
import { notFound } from '../domain/errors.js';
import { jobStatsOf, type JobStats } from '../domain/job-stats.js';
import { readClientStats, readDomainStats } from '../repositories/job-stats.repository.js';
import type { AppContext } from './context.js';

export type { JobStats } from '../domain/job-stats.js';

/**
 * `GET .../domains/{d}/stats`: the domain's jobs by status and its last hour's throughput,
 * from the counters the sequencer keeps (they lag the jobs by its turn). The caller's right to
 * the client was checked with the route's scope. Read from the replica when there is one; a
 * client or domain it does not know yet is asked of the primary before it is a 404.
 */
export async function getDomainStats(
  ctx: AppContext,
  _caller: Caller,
  input: { clientId: string; domainId: string },
): Promise<JobStats> {
  const { clientId, domainId } = input;
  let stats = await readDomainStats(ctx.db.reads, clientId, domainId);
  if ((!stats.clientExists || !stats.domainExists) && ctx.db.reads !== ctx.db) {
    stats = await readDomainStats(ctx.db, clientId, domainId);
  }
  if (!stats.clientExists) throw notFound(`client "${clientId}" not found`);
  if (!stats.domainExists) throw notFound(`domain "${domainId}" not found in client "${clientId}"`);
  return jobStatsOf(stats);
}

/** `GET /v2/clients/{c}/stats`: the same, summed over the client's domains. */
export async function getClientStats(
  ctx: AppContext,
  _caller: Caller,
  input: { clientId: string },
): Promise<JobStats> {
  let stats = await readClientStats(ctx.db.reads, input.clientId);
  if (!stats.clientExists && ctx.db.reads !== ctx.db) {
    stats = await readClientStats(ctx.db, input.clientId);
  }
  if (!stats.clientExists) throw notFound(`client "${input.clientId}" not found`);
  return jobStatsOf(stats);
}
