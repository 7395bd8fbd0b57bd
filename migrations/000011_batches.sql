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
  primary key (client_id, batch_id),
  foreign key (client_id, domain_id) references domains (client_id, domain_id)
);
create index batches_by_domain on batches (client_id, domain_id, created_at desc, batch_id desc);
-- The batches a finisher still has to look at: few, however many finished ones are kept.
create index batches_open on batches (created_at) where finished_at is null;

-- A batch's jobs by status, kept current as they move, so that reading a batch never counts its
-- jobs. One row per batch and shard, each job counted in the shard its id picks (from its
-- creation on): concurrent completions of one batch update different rows instead of queueing
-- for one. The batch's counts are the sums over its shards.
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

-- Moves a batch job's count from its old status to its new one. A row trigger whose WHEN clause
-- is evaluated before any function call: jobs outside batches cost nothing.
create function pie_batch_count_move() returns trigger
language plpgsql as $$
begin
  insert into batch_counts as c
    (client_id, batch_id, shard, queued, dispatched, running, success, failure, cancelled)
  values (new.client_id, new.batch_id, pie_batch_shard(new.job_id),
    (new.status = 'queued')::int - (old.status = 'queued')::int,
    (new.status = 'dispatched')::int - (old.status = 'dispatched')::int,
    (new.status = 'running')::int - (old.status = 'running')::int,
    (new.status = 'success')::int - (old.status = 'success')::int,
    (new.status = 'failure')::int - (old.status = 'failure')::int,
    (new.status = 'cancelled')::int - (old.status = 'cancelled')::int)
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

create trigger jobs_batch_counts after update of status on jobs
  for each row when (old.status is distinct from new.status and new.batch_id is not null)
  execute function pie_batch_count_move();

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
