import type { Queryable } from '../../src/db/database.js';
import type { JobStatus } from '../../src/domain/job-status.js';

/**
 * Job rows written straight into the database, for tests of what PIE does with many jobs of
 * given statuses and ages (retention, the indexes of the jobs list), where making each through
 * the API and the lifecycle would take minutes and could not age them. The API's own tests make
 * their jobs through the API.
 */

export const ROW_DOMAIN = 'd1';
export const ROW_MODEL = 'rows-model';

/** A client with one domain, services `s0` to `s{services - 1}`, a version and its assignment. */
export async function seedJobTarget(q: Queryable, clientId: string, services = 1): Promise<void> {
  await q.query(`insert into clients (client_id) values ($1)`, [clientId]);
  await q.query(`insert into domains (client_id, domain_id) values ($1, $2)`, [
    clientId,
    ROW_DOMAIN,
  ]);
  await q.query(
    `insert into services (client_id, domain_id, service_id)
     select $1, $2, 's' || i from generate_series(0, $3::integer - 1) as i`,
    [clientId, ROW_DOMAIN, services],
  );
  await q.query(`insert into models (model_id) values ($1) on conflict do nothing`, [ROW_MODEL]);
  await q.query(
    `insert into model_versions (model_id, model_version, features)
     values ($1, '1', '[]') on conflict do nothing`,
    [ROW_MODEL],
  );
  await q.query(
    `insert into assignments (client_id, assignment_id, domain_id, scope, key, model_id, model_version)
     values ($1, '00000000-0000-0000-0000-000000000001', $2, 'domain', 'default', $3, '1')`,
    [clientId, ROW_DOMAIN, ROW_MODEL],
  );
}

export interface JobRow {
  /** Stored in the job's input as `tag`, to find the job again. */
  tag: string;
  status: JobStatus;
  /** Seconds before now the job was created (default 0). */
  createdAgoS?: number;
  /** Seconds before now the job finished; default: now for a final status, else never. */
  finishedAgoS?: number | null;
  serviceId?: string | null;
  jobType?: string;
  assignmentKey?: string;
}

/** Inserts jobs of `clientId` (seeded by `seedJobTarget`) as given, in one statement. */
export async function insertJobs(q: Queryable, clientId: string, jobs: JobRow[]): Promise<void> {
  const rows = jobs.map((job) => ({
    tag: job.tag,
    status: job.status,
    created_ago_s: job.createdAgoS ?? 0,
    finished_ago_s:
      job.finishedAgoS !== undefined
        ? job.finishedAgoS
        : ['success', 'failure', 'cancelled'].includes(job.status)
          ? 0
          : null,
    service_id: job.serviceId === undefined ? 's0' : job.serviceId,
    job_type: job.jobType ?? 'inference',
    assignment_key: job.assignmentKey ?? 'default',
  }));
  await q.query(
    `insert into jobs (client_id, domain_id, service_id, assignment_id, assignment_key, model_id,
                       model_version, job_type, status, input, max_attempts, deadline_at,
                       created_at, finished_at, dispatched_at)
     select $1, $2, r.service_id, '00000000-0000-0000-0000-000000000001', r.assignment_key, $3,
            '1', r.job_type, r.status, jsonb_build_object('tag', r.tag), 5,
            now() + interval '1 hour',
            now() - make_interval(secs => r.created_ago_s),
            now() - make_interval(secs => r.finished_ago_s),
            -- A job that was ever handed out (every one but a queued job here) has a dispatch time.
            case when r.status <> 'queued' then now() - make_interval(secs => r.created_ago_s) end
     from jsonb_to_recordset($4::jsonb) as r(tag text, status text, created_ago_s float8,
       finished_ago_s float8, service_id text, job_type text, assignment_key text)`,
    [clientId, ROW_DOMAIN, ROW_MODEL, JSON.stringify(rows)],
  );
}

/** The tags of the jobs left, sorted. */
export async function jobTags(q: Queryable): Promise<string[]> {
  const { rows } = await q.query<{ tag: string }>(`select input->>'tag' as tag from jobs`);
  return rows.map((row) => row.tag).sort();
}
