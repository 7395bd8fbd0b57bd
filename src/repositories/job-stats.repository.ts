import type { Queryable } from '../db/database.js';
import type { StatsRead } from '../domain/job-stats.js';

/**
 * Reads of the job counters the event-log sequencer keeps (migration 000017): `job_counts`
 * (jobs per domain and status) and `job_activity` (jobs that entered each status, per domain
 * and minute). Each read is one statement over at most (domains x statuses) counts and 60
 * minutes of activity per domain, through the tables' primary keys, whatever the number of
 * jobs; the same statement says whether the client and the domain exist, so a 404 costs
 * nothing more.
 */

export interface TenantStats extends StatsRead {
  clientExists: boolean;
  /** Whether the domain exists; true when no domain was asked for. */
  domainExists: boolean;
}

interface Row {
  client_exists: boolean;
  domain_exists: boolean;
  as_of: Date | string;
  since: Date | string;
  counts: [string, number | string][] | string;
  activity: [string, string, number | string][] | string;
}

// The minutes read: the current one and the 59 before it, on the database's clock.
const WINDOW = `select now() as as_of,
  date_trunc('minute', now(), 'UTC') - interval '59 minutes' as since`;

/** A json value as both drivers hand it over (parsed, or as text). */
const parsed = <T>(value: T | string): T =>
  typeof value === 'string' ? (JSON.parse(value) as T) : value;

function toStats(row: Row): TenantStats {
  return {
    clientExists: row.client_exists,
    domainExists: row.domain_exists,
    asOf: new Date(row.as_of),
    since: new Date(row.since),
    counts: parsed(row.counts).map(([status, count]) => ({ status, count: Number(count) })),
    activity: parsed(row.activity).map(([minute, status, count]) => ({
      minute: new Date(minute),
      status,
      count: Number(count),
    })),
  };
}

/** One domain's counts and its last 60 minutes. */
export async function readDomainStats(
  q: Queryable,
  clientId: string,
  domainId: string,
): Promise<TenantStats> {
  const { rows } = await q.query<Row>(
    `select
       exists (select 1 from clients where client_id = $1) as client_exists,
       exists (select 1 from domains where client_id = $1 and domain_id = $2) as domain_exists,
       w.as_of, w.since,
       (select coalesce(json_agg(json_build_array(k.status, k.count)), '[]')
        from job_counts k where k.client_id = $1 and k.domain_id = $2) as counts,
       (select coalesce(json_agg(json_build_array(a.minute, a.status, a.count)), '[]')
        from job_activity a
        where a.client_id = $1 and a.domain_id = $2 and a.minute >= w.since) as activity
     from (${WINDOW}) as w`,
    [clientId, domainId],
  );
  return toStats(rows[0]!);
}

/** A client's counts and last 60 minutes, summed over its domains. */
export async function readClientStats(q: Queryable, clientId: string): Promise<TenantStats> {
  const { rows } = await q.query<Row>(
    `select
       exists (select 1 from clients where client_id = $1) as client_exists,
       true as domain_exists,
       w.as_of, w.since,
       (select coalesce(json_agg(json_build_array(k.status, k.count)), '[]')
        from (select status, sum(count) as count from job_counts
              where client_id = $1 group by status) as k) as counts,
       (select coalesce(json_agg(json_build_array(a.minute, a.status, a.count)), '[]')
        from (select minute, status, sum(count) as count from job_activity
              where client_id = $1 and minute >= w.since group by minute, status) as a) as activity
     from (${WINDOW}) as w`,
    [clientId],
  );
  return toStats(rows[0]!);
}
