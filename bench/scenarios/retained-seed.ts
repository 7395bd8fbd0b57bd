/**
 * Finished jobs written straight into the database for the retained scenario, shaped like the
 * jobs PIE itself finishes: each copies a job the bench ran and completed through the API (its
 * client, domain, assignment, model version, features, config, deadline span, completion), and
 * varies what the list filters and retention read.
 *
 * - service: `service-1` to `service-100`, evenly;
 * - status: 90 % success, 7 % failure (with an error), 3 % cancelled;
 * - job type: 80 % inference, 15 % training, 5 % evaluation;
 * - assignment key: 90 % `default`, 10 % `shadow` (with that assignment's id);
 * - created_at spread evenly from 29 days ago to 2 days ago, finished 0.2 to 1.3 s later, so
 *   every seeded job is inside the default 30-day retention and outside a 1-day one.
 *
 * Each of those is drawn from a hash of the row number, so they vary independently.
 */

/** What both a `pg` client and PIE's embedded `Database` offer. */
export interface Sql {
  query(text: string, values?: unknown[]): Promise<unknown>;
}

const INSERT = `
insert into jobs (client_id, domain_id, service_id, assignment_id, assignment_key, model_id,
  model_version, job_type, status, input, features, config, lineage, attempt, max_attempts,
  deadline_at, run_at, output, error, completion, created_at, updated_at, dispatched_at,
  finished_at, handler_type, handler_ref, priority, lane_seq)
select t.client_id, t.domain_id, 'service-' || (1 + h % 100),
  case when h / 2000 % 10 = 0 then $2::uuid else t.assignment_id end,
  case when h / 2000 % 10 = 0 then 'shadow' else t.assignment_key end,
  t.model_id, t.model_version,
  case when h / 100 % 20 < 16 then 'inference'
       when h / 100 % 20 < 19 then 'training' else 'evaluation' end,
  s.status, t.input, t.features, t.config, t.lineage, 1, t.max_attempts,
  c.created_at + (t.deadline_at - t.created_at), c.created_at,
  case when s.status = 'success' then t.output end,
  case when s.status = 'failure'
       then '{"code": "model_error", "message": "the model raised an error"}'::jsonb end,
  case when s.status = 'success' then t.completion end,
  c.created_at, c.finished_at, c.created_at + interval '50 milliseconds', c.finished_at,
  t.handler_type, t.handler_ref, t.priority, t.lane_seq
from generate_series($3::int, $4::int - 1) as i
cross join lateral (select hashint4(i) & 2147483647 as h) as hashed
cross join lateral (
  select case when h / 20000 % 100 < 90 then 'success'
              when h / 20000 % 100 < 97 then 'failure' else 'cancelled' end as status
) as s
cross join lateral (
  select created_at, created_at + (200 + h / 2000000 % 4800) * interval '1 millisecond'
         as finished_at
  from (select date_trunc('milliseconds',
                 now() - interval '2 days' - (1 - i::float8 / $5) * interval '27 days')
               as created_at) as at
) as c
cross join (
  select * from jobs where client_id = $1 and status = 'success'
  order by created_at desc limit 1
) as t`;

/**
 * Inserts `count` finished jobs in chunks of `chunk` (each one statement), copying the newest
 * successful job of `clientId`; `shadowAssignmentId` is the `shadow` key's assignment.
 */
export async function seedFinishedJobs(
  sql: Sql,
  options: {
    clientId: string;
    shadowAssignmentId: string;
    count: number;
    chunk: number;
    log: (line: string) => void;
  },
): Promise<void> {
  const { clientId, shadowAssignmentId, count, chunk } = options;
  for (let from = 0; from < count; from += chunk) {
    const to = Math.min(count, from + chunk);
    await sql.query(INSERT, [clientId, shadowAssignmentId, from, to, count]);
    options.log(
      `retained: seeded ${to.toLocaleString('en-US')} of ${count.toLocaleString('en-US')}`,
    );
  }
}
