-- Batches: the jobs one services init, one `jobs/batch` request or one schedule's tick started
-- together, read as a whole (counts by status) and followed by `batch_complete` subscriptions
-- once the last of them is final.
create table batches (
  client_id text not null,
  batch_id uuid not null default gen_random_uuid(),
  domain_id text not null,
  kind text not null check (kind in ('init', 'bulk', 'schedule')),
  -- What the batch's jobs ran through when they started (what batch_complete subscriptions
  -- match on): the assignment key, and the model version when every job has the same one (a
  -- service's own assignment may differ from the domain's; then both are null).
  assignment_key text not null,
  model_id text,
  model_version text,
  total integer not null check (total > 0),
  created_at timestamptz(3) not null default date_trunc('milliseconds', now()),
  finished_at timestamptz,
  -- What its batch_complete subscriptions did when it finished: each one's job, or why it
  -- could not start one (as a completion's answer lists them).
  triggered_events jsonb not null default '[]',
  primary key (client_id, batch_id),
  foreign key (client_id, domain_id) references domains (client_id, domain_id)
);
create index batches_by_domain on batches (client_id, domain_id, created_at desc, batch_id desc);
-- The batches a finisher still has to look at: few, however many finished ones are kept.
create index batches_open on batches (created_at) where finished_at is null;
-- Retention deletes finished batches by age, as it does their jobs.
create index batches_finished on batches (finished_at) where finished_at is not null;

-- A batch's jobs by status, kept current as they move, so that reading a batch never counts its
-- jobs. One row per batch and shard, each job counted in the shard its id picks (from its
-- creation on): concurrent completions of one batch mostly update different rows instead of
-- queueing for one. The batch's counts are the sums over its shards.
create table batch_counts (
  client_id text not null,
  batch_id uuid not null,
  shard smallint not null,
  queued integer not null default 0,
  dispatched integer not null default 0,
  running integer not null default 0,
  success integer not null default 0,
  failure integer not null default 0,
  cancelled integer not null default 0,
  primary key (client_id, batch_id, shard)
);

alter table jobs add column batch_id uuid;
alter table jobs alter column batch_id set statistics 10;
-- The jobs list's `batch_id` filter, newest first like its other filters; and the failed
-- services of a finished batch.
create index jobs_by_batch on jobs (client_id, batch_id, created_at desc, job_id desc)
  where batch_id is not null;

-- The shard a job's moves are counted in.
create function pie_batch_shard(job_id text) returns smallint
language sql immutable strict parallel safe as $$ select (hashtext(job_id) & 7)::smallint $$;

-- Moves the counts of the batch jobs an UPDATE statement changed, from their old statuses to
-- their new ones: once per statement, over the statement's old and new rows, so a bulk cancel of
-- 10,000 batch jobs is one aggregate (a row trigger took 0.7 s for 8,000 rows on the embedded
-- database, this 0.07 s). The old rows count -1 and the new +1 for their status; a row whose
-- status did not change cancels out, and statements that touched no batch job change nothing.
-- (A trigger with transition tables cannot name columns, so it runs for every UPDATE of jobs;
-- over the one or few rows of a claim or completion it costs some tens of microseconds.)
create function pie_batch_counts_move() returns trigger
language plpgsql as $$
begin
  -- Most statements move no batch job: one look, and done.
  if not exists (select 1 from moved_new where batch_id is not null) then
    return null;
  end if;
  insert into batch_counts as c
    (client_id, batch_id, shard, queued, dispatched, running, success, failure, cancelled)
  select client_id, batch_id, shard, sum(queued), sum(dispatched), sum(running), sum(success),
    sum(failure), sum(cancelled)
  from (
    select client_id, batch_id, pie_batch_shard(job_id) as shard,
      (status = 'queued')::int as queued, (status = 'dispatched')::int as dispatched,
      (status = 'running')::int as running, (status = 'success')::int as success,
      (status = 'failure')::int as failure, (status = 'cancelled')::int as cancelled
    from moved_new where batch_id is not null
    union all
    select client_id, batch_id, pie_batch_shard(job_id),
      -(status = 'queued')::int, -(status = 'dispatched')::int, -(status = 'running')::int,
      -(status = 'success')::int, -(status = 'failure')::int, -(status = 'cancelled')::int
    from moved_old where batch_id is not null
  ) as moves
  group by client_id, batch_id, shard
  having (sum(queued), sum(dispatched), sum(running), sum(success), sum(failure),
          sum(cancelled)) <> (0, 0, 0, 0, 0, 0)
  -- Shard rows are locked in key order, so two statements moving jobs of the same shards (two
  -- claims of one batch's jobs) wait for each other instead of deadlocking.
  order by client_id, batch_id, shard
  on conflict (client_id, batch_id, shard) do update set
    queued = c.queued + excluded.queued,
    dispatched = c.dispatched + excluded.dispatched,
    running = c.running + excluded.running,
    success = c.success + excluded.success,
    failure = c.failure + excluded.failure,
    cancelled = c.cancelled + excluded.cancelled;
  return null;
end
$$;

create trigger jobs_batch_counts after update on jobs
  referencing old table as moved_old new table as moved_new
  for each statement execute function pie_batch_counts_move();

-- batch_complete subscriptions: their source is a batch (optional model, assignment key and
-- kind) rather than an inference job's model.
alter table subscriptions drop constraint subscriptions_event_check;
alter table subscriptions add constraint subscriptions_event_check
  check (event in ('inference_complete', 'batch_complete'));
alter table subscriptions alter column source_model_id drop not null;
alter table subscriptions add column source_assignment_key text;
alter table subscriptions add column source_kind text
  check (source_kind in ('init', 'bulk', 'schedule'));
alter table subscriptions add constraint subscriptions_source_fits_event check (
  case event
    when 'inference_complete' then source_model_id is not null
      and source_assignment_key is null and source_kind is null
    else source_model_version is null and source_service_id is null
  end);
create index subscriptions_by_batch_source on subscriptions (client_id, domain_id)
  where status = 'active' and event = 'batch_complete';
