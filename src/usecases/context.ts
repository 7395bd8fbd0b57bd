import { loadCallbackTokens, type CallbackTokens } from '../auth/callback-tokens.js';
import type { Database } from '../db/database.js';
import { GroupCommit } from '../db/group-commit.js';
import { OpenJobQuota } from '../limits/open-job-quota.js';
import { JobEventLog, type JobEventLogOptions } from '../lifecycle/job-event-log.js';
import { JobEventBus } from '../lifecycle/job-events.js';
import { JobStops } from '../lifecycle/job-stops.js';
import { JobWakeups } from '../lifecycle/job-wakeups.js';
import { countJobEvents } from '../observability/job-metrics.js';
import { Metrics } from '../observability/metrics.js';
import { readQueueDepth } from '../repositories/queue-depth.repository.js';
import {
  insertJobsIfTargetsCurrent,
  type GuardedJob,
} from '../repositories/job-batch-insert.repository.js';
import { JobTargetCache } from './job-target-cache.js';

/** Run-job insert statements in flight at once on PostgreSQL (its pool holds 20 connections). */
const PG_INSERT_STATEMENTS = 4;

/** What every use case may reach: the shared resources of one PIE process. */
export interface AppContext {
  db: Database;
  callbacks: CallbackTokens;
  /** Job events, published after commit; metrics and wake-ups follow them. */
  events: JobEventBus;
  wakeups: JobWakeups;
  /** The job event log behind the event streams: numbers events, fans them out to streams. */
  eventLog: JobEventLog;
  /** Jobs cancelled while someone held them, told to whoever holds them (the claim pump). */
  stops: JobStops;
  metrics: Metrics;
  /** Job targets read recently, so running a job is one statement (see startJob). */
  jobTargets: JobTargetCache;
  /** Open jobs per client, for the quota on routes that start jobs (PIE_QUOTA_OPEN_JOBS). */
  openJobs: OpenJobQuota;
  /** Group commit of run-job inserts, on the embedded database only (see GroupCommit). */
  jobInserts: GroupCommit<GuardedJob, string | undefined>;
  /** The base URL model handlers call back on (PIE_PUBLIC_URL, else the listening address). */
  publicUrl: () => string;
}

export interface ContextOptions {
  /** Open jobs a client may have before starting more is a 429; 0 or absent: no quota. */
  quotaOpenJobs?: number;
  /** Told when a job event listener throws (the other listeners still run). */
  onListenerError?: (error: unknown) => void;
  /** The event log's poll and the events a catching-up stream may have waiting. */
  events?: Partial<JobEventLogOptions>;
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
  const events = new JobEventBus(options.onListenerError);
  const metrics = new Metrics();
  const wakeups = await JobWakeups.listen(db);
  const stops = await JobStops.listen(db);
  countJobEvents(events, metrics);
  metrics.observeQueue(() => readQueueDepth(db));
  wakeups.follow(events);
  stops.follow(events);
  const eventLog = await JobEventLog.open(db, options.events, options.onListenerError);
  eventLog.follow(events);
  const ctx: AppContext = {
    db,
    callbacks: await loadCallbackTokens(db),
    events,
    wakeups,
    eventLog,
    stops,
    metrics,
    jobTargets: new JobTargetCache(),
    openJobs: new OpenJobQuota(db, options.quotaOpenJobs ?? 0),
    // Group commit for run-job's inserts: on PGlite (one connection) one statement at a time;
    // on PostgreSQL a few at once, so a burst shares WAL flushes without queueing behind one.
    jobInserts: new GroupCommit(db, insertJobsIfTargetsCurrent, {
      concurrency: db.backend === 'pglite' ? 1 : PG_INSERT_STATEMENTS,
    }),
    publicUrl: () => publicUrl ?? listeningUrl,
  };
  return {
    ctx,
    setListeningUrl: (url) => {
      listeningUrl = url;
    },
  };
}
