-- The job event log behind `GET .../domains/{d}/events` (Server-Sent Events): one row per job
-- created or per change of a job's status, written by statement triggers on `jobs` in the
-- transaction that made the change, so every PIE process sharing the database sees every change.
--
-- Ordering. A row is written with no `position`; a sequencer (pie_sequence_job_events, run by
-- any process, one at a time) later gives committed rows the next positions, in the order their
-- statements ran (`seq`). A position is therefore given only after its row committed, and
-- positions become visible in increasing order with no gap: a reader that has seen position p
-- never later finds a new row at or below p, however the writers' transactions interleaved and
-- whatever order they committed in. (A sequence value or a timestamp taken inside the writing
-- transaction is not enough: a reader may pass a value whose transaction commits later.) Two
-- changes of one job are sequenced in the order they happened: the second statement waited for
-- the first one's commit (the row lock), so either the first was sequenced in an earlier turn, or
-- both are in one turn and the first has the smaller `seq`.
create table job_events (
  seq bigint generated always as identity,
  -- Given by the sequencer; null until then.
  position bigint,
  client_id text not null,
  domain_id text not null,
  job_id text not null,
  status text not null,
  -- null for a job created
  previous_status text,
  job_type text not null,
  service_id text,
  model_id text not null,
  model_version text not null,
  attempt integer not null,
  updated_at timestamptz not null,
  created_at timestamptz not null default now()
);
-- Rows waiting for the sequencer: few, however many are kept.
create index job_events_unsequenced on job_events (seq) where position is null;
-- Each process's reader follows the whole log by position; retention deletes from its start.
create unique index job_events_by_position on job_events (position) where position is not null;
-- A stream resuming from a Last-Event-ID reads its own domain's rows.
create index job_events_by_domain on job_events (client_id, domain_id, position)
  where position is not null;

-- The last position given, and the last one retention deleted through (a Last-Event-ID below it
-- may have missed events: the stream answers with a `reset`). The one row is also the
-- sequencer's lock.
create table job_event_log (
  only_row boolean primary key default true check (only_row),
  head bigint not null default 0,
  pruned_through bigint not null default 0
);
insert into job_event_log default values;

-- Gives the next positions to up to `max_rows` committed rows in `seq` order, and returns the
-- head after. Called as one statement: the row lock waits for a sequencer under way in another
-- process, and the statements after it take their snapshot once it is ours (READ COMMITTED,
-- a volatile function), so they see every position that sequencer gave.
create function pie_sequence_job_events(max_rows integer) returns bigint
language plpgsql as $$
declare
  last bigint;
  given integer;
begin
  select head into last from job_event_log for update;
  with todo as (
    select seq, row_number() over (order by seq) as n
    from job_events where position is null
    order by seq
    limit max_rows
  )
  update job_events e set position = last + todo.n from todo where e.seq = todo.seq;
  get diagnostics given = row_count;
  if given > 0 then
    update job_event_log set head = last + given;
  end if;
  return last + given;
end
$$;

-- Jobs created: one row each (services init makes many in one statement).
create function pie_job_events_insert() returns trigger
language plpgsql as $$
begin
  insert into job_events (client_id, domain_id, job_id, status, previous_status, job_type,
    service_id, model_id, model_version, attempt, updated_at)
  select client_id, domain_id, job_id, status, null, job_type, service_id, model_id,
    model_version, attempt, updated_at
  from created;
  return null;
end
$$;

-- Jobs whose status changed: one row each. Updates that keep the status (a lease renewed, a
-- handler's reference recorded) write nothing. The old and new rows are paired by grouping
-- their union on the job's key, not by a join: a join of the two transition tables is planned
-- once for the function and kept, and the plan made for the one-row updates of claims and
-- completions (a nested loop) took 12 to 25 s for a bulk cancel of 10,000 jobs; a grouping is
-- linear-ish at any size (the batch-count trigger of migration 000011 does the same).
create function pie_job_events_update() returns trigger
language plpgsql as $$
begin
  insert into job_events (client_id, domain_id, job_id, status, previous_status, job_type,
    service_id, model_id, model_version, attempt, updated_at)
  select client_id, domain_id, job_id, status, previous_status, job_type, service_id, model_id,
    model_version, attempt, updated_at
  from (
    select client_id, job_id,
      max(status) filter (where is_new) as status,
      max(status) filter (where not is_new) as previous_status,
      max(domain_id) as domain_id, max(job_type) as job_type, max(service_id) as service_id,
      max(model_id) as model_id, max(model_version) as model_version,
      max(attempt) filter (where is_new) as attempt,
      max(updated_at) filter (where is_new) as updated_at
    from (
      select true as is_new, client_id, job_id, status, domain_id, job_type, service_id,
        model_id, model_version, attempt, updated_at
      from moved_new
      union all
      select false, client_id, job_id, status, domain_id, job_type, service_id, model_id,
        model_version, attempt, updated_at
      from moved_old
    ) as sides
    group by client_id, job_id
  ) as moved
  where status <> previous_status;
  return null;
end
$$;

create trigger jobs_events_insert after insert on jobs
  referencing new table as created
  for each statement execute function pie_job_events_insert();

create trigger jobs_events_update after update on jobs
  referencing old table as moved_old new table as moved_new
  for each statement execute function pie_job_events_update();
