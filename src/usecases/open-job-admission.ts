import { tooManyRequests } from '../domain/errors.js';
import type { AppContext } from './context.js';

// The open-jobs quota's counts are refreshed every second, so that is when to ask again.
const QUOTA_RETRY_AFTER_S = 1;

/**
 * Runs `work`, which starts jobs for `clientId` and resolves (once they are committed) to its
 * result and how many jobs it started, under the open-jobs quota: at the quota it is a 429
 * with Retry-After. Called after the permission check and before anything is read, so a
 * client at its quota costs the database nothing; an idempotent replay is refused too while
 * the client is at its quota.
 */
export async function withinOpenJobQuota<T>(
  ctx: AppContext,
  clientId: string,
  work: () => Promise<{ result: T; started: number }>,
): Promise<T> {
  const admission = await ctx.openJobs.admit(clientId);
  if (admission === undefined) {
    ctx.metrics.rateLimited.inc({ reason: 'open_jobs' });
    throw tooManyRequests(
      `client "${clientId}" has reached its quota of ${ctx.openJobs.limit} open jobs ` +
        '(queued, dispatched or running); retry once some have finished',
      QUOTA_RETRY_AFTER_S,
    );
  }
  let started = 0;
  try {
    const done = await work();
    started = done.started;
    return done.result;
  } finally {
    admission.settle(started);
  }
}
