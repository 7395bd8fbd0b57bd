import { loadCallbackTokens } from './auth/callback-tokens.js';
import type { Database } from './db/database.js';
import { JobWakeups } from './dispatch/job-wakeups.js';
import { Metrics } from './metrics.js';
import type { AppContext } from './usecases/context.js';
import { JobInsertBatcher } from './usecases/job-insert-batcher.js';
import { JobTargetCache } from './usecases/job-target-cache.js';

/**
 * The shared resources of one process. `publicUrl` may be unknown until the server listens;
 * `setListeningUrl` fills it in when PIE_PUBLIC_URL did not.
 */
export async function createAppContext(
  db: Database,
  publicUrl: string | undefined,
): Promise<{ ctx: AppContext; setListeningUrl: (url: string) => void }> {
  let listeningUrl = 'http://127.0.0.1';
  const ctx: AppContext = {
    db,
    callbacks: await loadCallbackTokens(db),
    wakeups: await JobWakeups.listen(db),
    metrics: new Metrics(),
    jobTargets: new JobTargetCache(),
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
