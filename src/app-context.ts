import { loadCallbackTokens } from './auth/callback-tokens.js';
import type { Database } from './db/database.js';
import { JobWakeups } from './dispatch/job-wakeups.js';
import { Metrics } from './metrics.js';
import type { AppContext } from './usecases/context.js';
import { JobInsertBatcher } from './usecases/job-insert-batcher.js';
import { JobTargetCache } from './usecases/job-target-cache.js';
import { OpenJobQuota } from './usecases/open-job-quota.js';

export interface ContextOptions {
  /** Open jobs a client may have before starting more is a 429; 0 or absent: no quota. */
  quotaOpenJobs?: number;
}

/**
 * The shared resources of one process. `publicUrl` may be unknown until the server listens;
 * `setListeningUrl` fills it in when PIE_PUBLIC_URL did not.
 */
export async function createAppContext(
  db: Database,
  publicUrl: string | undefined,
  options: ContextOptions = {},
): Promise<{ ctx: AppContext; setListeningUrl: (url: string) => void }> {
  let listeningUrl = 'http://127.0.0.1';
  const ctx: AppContext = {
    db,
    callbacks: await loadCallbackTokens(db),
    wakeups: await JobWakeups.listen(db),
    metrics: new Metrics(),
    jobTargets: new JobTargetCache(),
    openJobs: new OpenJobQuota(db, options.quotaOpenJobs ?? 0),
    jobInserts: db.backend === 'pglite' ? new JobInsertBatcher(db) : undefined,
    publicUrl: () => publicUrl ?? listeningUrl,
  };
  return {
    ctx,
    setListeningUrl: (url) => {
      listeningUrl = url;
    },
  };
}
