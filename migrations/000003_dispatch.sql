-- Dispatch, how a job reaches its model handler (delivered by PIE to an http, command or
-- truefoundry handler, or claimed by a pull worker): the job row committed by the request is
-- the outbox.

-- How the job reaches its handler, copied from the version at creation (and kept in step when
-- the version's handler changes), so push dispatchers and pull workers each claim from their
-- own partial index instead of scanning each other's queued jobs.
alter table jobs add column handler_type text not null default 'worker'
  check (handler_type in ('worker', 'http', 'command', 'truefoundry'));
-- A reference the handler gave for the current attempt (TrueFoundry's jobRunName).
alter table jobs add column handler_ref text;
-- The error of the latest failed attempt, while the job waits to be retried.
alter table jobs add column last_error jsonb;

drop index jobs_ready;
create index jobs_push_ready on jobs (run_at, job_id)
  where status = 'queued' and handler_type <> 'worker';
create index jobs_pull_ready on jobs (model_id, model_version, run_at, job_id)
  where status = 'queued' and handler_type = 'worker';
create index jobs_leases on jobs (lease_expires_at) where lease_expires_at is not null;
create index jobs_open_deadlines on jobs (deadline_at)
  where status in ('queued', 'dispatched', 'running');
create index jobs_watched_runs on jobs (handler_type)
  where handler_ref is not null and status in ('dispatched', 'running');

-- Exponential backoff with jitter, capped: about 1 s, 2 s, 4 s ... up to 5 minutes, each
-- between half and all of that, so retries of many jobs do not arrive together.
create function pie_retry_delay(attempt integer) returns interval
language sql volatile as $$
  select make_interval(secs => least(300, power(2, greatest(attempt, 1) - 1)) * (0.5 + random() / 2))
$$;

-- Wakes dispatchers and waiting workers when jobs become claimable. The payload lists the
-- model versions that gained queued jobs (empty when there are too many to list: wake all).
create function pie_notify_jobs() returns trigger
language plpgsql as $$
declare
  versions text;
  total integer;
begin
  select string_agg(distinct model_id || '/' || model_version, ','), count(distinct (model_id, model_version))
    into versions, total
    from new_rows where status = 'queued';
  if total > 0 then
    perform pg_notify('pie_jobs', case when total <= 20 then versions else '' end);
  end if;
  return null;
end
$$;

create trigger jobs_notify_insert after insert on jobs
  referencing new table as new_rows for each statement execute function pie_notify_jobs();
create trigger jobs_notify_update after update on jobs
  referencing new table as new_rows for each statement execute function pie_notify_jobs();

-- Process-wide settings shared by every PIE process on this database.
create table pie_settings (
  name text primary key,
  value text not null
);
