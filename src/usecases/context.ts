import type { CallbackTokens } from '../auth/callback-tokens.js';
import type { Database } from '../db/database.js';
import type { JobWakeups } from '../dispatch/job-wakeups.js';
import type { Metrics } from '../metrics.js';
import type { JobInsertBatcher } from './job-insert-batcher.js';
import type { JobTargetCache } from './job-target-cache.js';
import type { OpenJobQuota } from './open-job-quota.js';

/** What every use case may reach: the shared resources of one PIE process. */
export interface AppContext {
  db: Database;
  callbacks: CallbackTokens;
  wakeups: JobWakeups;
  metrics: Metrics;
  /** Job targets read recently, so running a job is one statement (see startJob). */
  jobTargets: JobTargetCache;
  /** Open jobs per client, for the quota on routes that start jobs (PIE_QUOTA_OPEN_JOBS). */
  openJobs: OpenJobQuota;
  /** Group commit of run-job inserts, on the embedded database only (see JobInsertBatcher). */
  jobInserts: JobInsertBatcher | undefined;
  /** The base URL model handlers call back on (PIE_PUBLIC_URL, else the listening address). */
  publicUrl: () => string;
}
