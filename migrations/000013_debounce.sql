-- Debounced subscriptions: a subscription's `debounce_s` (0 to 86,400; 0 fires once per
-- completion as before). The first matching completion starts a job due `debounce_s` later;
-- matching completions until then join that job rather than start their own.
alter table subscriptions add column debounce_s integer not null default 0
  check (debounce_s between 0 and 86400);

-- The debounced subscription a job gathers completions for. The index holds only such jobs
-- (its condition names no status, so that no statement about one job can take it for a small
-- index of that job's status: see migration 000010).
alter table jobs add column debounce_subscription_id uuid;
alter table jobs alter column debounce_subscription_id set statistics 10;
create index jobs_debounce_gathering on jobs (client_id, debounce_subscription_id, run_at)
  where debounce_subscription_id is not null;

-- The completions that joined a gathering job after the one that started it, one row each:
-- joining is an insert, so concurrent completions join without waiting for each other (each
-- holds a share lock on the gathering job, which keeps a claim from taking it meanwhile), and
-- a burst of 10,000 writes 10,000 small rows rather than rewriting a growing trigger 10,000
-- times. Reading the job composes its trigger from them (pie_job_trigger).
create table debounce_joins (
  client_id text not null,
  job_id text not null,
  completed_job_id text not null,
  output jsonb,
  joined_at timestamptz not null default clock_timestamp(),
  primary key (client_id, job_id, completed_job_id)
);

-- A job's trigger as the API shows it: stored, or for a gathering job the stored one (its first
-- completion) followed by the completions that joined, in the order they joined.
create function pie_job_trigger(p_client text, p_job text, p_gathers uuid, p_trigger jsonb)
returns jsonb
language sql stable parallel safe as $$
  select case when p_gathers is null then p_trigger else (
    select jsonb_build_object(
      'subscription_id', p_trigger->'subscription_id',
      'job_ids', (p_trigger->'job_ids')
        || coalesce(jsonb_agg(to_jsonb(d.completed_job_id) order by d.joined_at, d.completed_job_id), '[]'),
      'outputs', (p_trigger->'outputs')
        || coalesce(jsonb_agg(coalesce(d.output, 'null'::jsonb) order by d.joined_at, d.completed_job_id), '[]'),
      'count', (p_trigger->>'count')::int + count(d.*))
    from debounce_joins d where d.client_id = p_client and d.job_id = p_job
  ) end
$$;
