import { JOB_STATUSES, type JobStatus } from './job-status.js';

/**
 * A domain's or a client's job statistics, as the stats routes answer them: the jobs in each
 * status now, and how many entered each status in each of the last 60 minutes. Both are read
 * from counters the event-log sequencer keeps (migration 000017), never by counting jobs.
 */

export const STATS_BUCKET_S = 60;
export const STATS_BUCKETS = 60;

export type StatusCounts = Record<JobStatus, number>;

export interface ThroughputBucket extends StatusCounts {
  /** The start of the minute. */
  at: string;
}

export interface JobStats {
  /** The database's clock when the statistics were read. */
  as_of: string;
  jobs_by_status: StatusCounts;
  throughput: {
    bucket_s: number;
    /** The start of the first bucket. */
    since: string;
    /** One per minute, oldest first; the last is the minute under way. */
    buckets: ThroughputBucket[];
  };
}

/** What the counters hold for one domain or client, as read. */
export interface StatsRead {
  asOf: Date;
  /** The start of the first minute read: 59 minutes before the start of the current one. */
  since: Date;
  counts: readonly { status: string; count: number }[];
  activity: readonly { minute: Date; status: string; count: number }[];
}

const zeros = (): StatusCounts =>
  Object.fromEntries(JOB_STATUSES.map((status) => [status, 0])) as StatusCounts;

const isStatus = (status: string): status is JobStatus =>
  (JOB_STATUSES as readonly string[]).includes(status);

/**
 * Every status present (0 when none) and every minute present (zeros when nothing happened).
 * A count is never shown below 0: one can be, for a moment, when retention deleted a job whose
 * last change the sequencer had not counted yet (its next turn brings the sum back).
 */
export function jobStatsOf(read: StatsRead): JobStats {
  const jobsByStatus = zeros();
  for (const { status, count } of read.counts) {
    if (isStatus(status)) jobsByStatus[status] += count;
  }
  for (const status of JOB_STATUSES) jobsByStatus[status] = Math.max(0, jobsByStatus[status]);
  const since = read.since.getTime();
  const buckets: ThroughputBucket[] = Array.from({ length: STATS_BUCKETS }, (_, i) => ({
    at: new Date(since + i * STATS_BUCKET_S * 1000).toISOString(),
    ...zeros(),
  }));
  for (const { minute, status, count } of read.activity) {
    const bucket = buckets[Math.floor((minute.getTime() - since) / (STATS_BUCKET_S * 1000))];
    if (bucket !== undefined && isStatus(status)) bucket[status] += count;
  }
  return {
    as_of: read.asOf.toISOString(),
    jobs_by_status: jobsByStatus,
    throughput: { bucket_s: STATS_BUCKET_S, since: read.since.toISOString(), buckets },
  };
}
