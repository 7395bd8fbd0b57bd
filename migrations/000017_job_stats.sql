-- Job statistics for `GET .../stats` and the console's overview: how many jobs each domain has
-- in each status, and how many entered each status in each recent minute. Reading them costs
-- (domains x statuses) rows, and 60 minutes of them, however many jobs are kept; counting the
-- jobs themselves would cost a read of every row on every load.
--
-- Both tables are kept by the event-log sequencer (pie_sequence_job_events, migration 000014),
-- not by the statements that change jobs: a trigger or a request updating one counter row per
-- (domain, status) would make every claim and completion of a domain queue on the same few
-- rows. The sequencer already reads each change once, after it committed, one turn at a time;
-- in that turn it adds the changes up by key and applies each sum with one upsert. The counts
-- therefore lag the jobs by the sequencer's turn (about 10 ms after a change in this process,
-- up to PIE_EVENTS_POLL_MS for a change nobody announced), and they count exactly the events
-- the log numbered: each event is numbered once, in the same statement that counts it.
--
-- Retention deletes finished jobs without an event: it subtracts them from job_counts in the
-- statement that deletes them (src/repositories/retention.repository.ts). Every write to
-- job_counts adds a signed amount, so the sequencer's additions and retention's subtractions
-- give the same sums in whichever order they run.

-- The number of jobs of a domain in each status, now (as of the last sequencer turn). A
-- (domain, status) whose jobs all left it keeps its row at 0.
create table job_counts (
  client_id text not null,
  domain_id text not null,
  status text not null,
  count bigint not null,
  primary key (client_id, domain_id, status)
);

-- How many jobs entered each status in each minute (by the change's `updated_at`, truncated to
-- the minute in UTC): a job created enters `queued`, a retry enters `queued` again. Retention
-- deletes the minutes older than 2 hours; the routes read the last 60.
create table job_activity (
  client_id text not null,
  domain_id text not null,
  minute timestamptz not null,
  status text not null,
  count bigint not null,
  primary key (client_id, domain_id, minute, status)
);
-- Retention deletes the oldest minutes first.
create index job_activity_by_minute on job_activity (minute);

-- The last position whose event job_counts and job_activity include. The sequencer counts the
-- rows it numbers and moves this with `head`, so normally the two are equal. They differ only
-- after a sequencer of the previous version numbered rows without counting them: one that was
-- waiting for the log's lock while this migration held it runs on with its old body once the
-- migration commits. The next turn of the new function counts those rows too (the positions
-- between this and `head`), so no event goes uncounted across the upgrade.
alter table job_event_log add column counted_through bigint not null default 0;

-- The backfill. `share row exclusive` on jobs waits for every transaction writing jobs to end
-- and keeps new writers waiting until this migration commits (readers go on); the table's
-- contents and the events that led to them then stay put while they are counted. Every event
-- still waiting for the sequencer is numbered first, with the function of 000014, which counts
-- nothing: the counts are then read from the jobs themselves, which already include those
-- events. Were they left waiting, the new function would add them on top of a count that holds
-- them already, and count them twice. After this the log's head and the counts agree, and every
-- later event is counted by the new function, once.
lock table jobs in share row exclusive mode;
select pie_sequence_job_events(2147483647);
insert into job_counts (client_id, domain_id, status, count)
select client_id, domain_id, status, count(*) from jobs group by client_id, domain_id, status;
-- The recent minutes, from the events the log still holds (PIE_EVENTS_RETENTION_S, an hour by
-- default), so the chart is not empty for an hour after the upgrade.
insert into job_activity (client_id, domain_id, minute, status, count)
select client_id, domain_id, date_trunc('minute', updated_at, 'UTC'), status, count(*)
from job_events
where position is not null and updated_at >= now() - interval '2 hours'
group by 1, 2, 3, 4;
update job_event_log set counted_through = head;

-- As in 000014: gives the next positions to up to `max_rows` committed rows in `seq` order and
-- returns the head after, one turn at a time (the log's row lock). Now, in the same statement
-- that numbers them, it also adds them to job_counts (+1 to the new status, -1 to the previous
-- one) and to job_activity (+1 to the status in the minute of the change), with rows another
-- version numbered since `counted_through` (see above). Every property the header of 000014
-- explains holds as before: positions are given only to committed rows, in `seq` order, under
-- the lock, in a statement that takes its snapshot once the lock is ours. The changes are
-- grouped by key before the upserts, since one statement may not update a row twice, and
-- applied in key order, as retention's subtractions are, so the two never wait on each other's
-- rows in opposite orders.
create or replace function pie_sequence_job_events(max_rows integer) returns bigint
language plpgsql as $$
declare
  last bigint;
  counted bigint;
  given integer;
begin
  select head, counted_through into last, counted from job_event_log for update;
  with todo as (
    select seq, row_number() over (order by seq) as n
    from job_events where position is null
    order by seq
    limit max_rows
  ), numbered as (
    update job_events e set position = last + todo.n from todo where e.seq = todo.seq
    returning e.client_id, e.domain_id, e.status, e.previous_status, e.updated_at
  ), changes as (
    select client_id, domain_id, status, previous_status, updated_at from numbered
    union all
    -- numbered by a previous version without being counted (normally none: an empty range)
    select client_id, domain_id, status, previous_status, updated_at from job_events
    where position > counted and position <= last
  ), moves as (
    select client_id, domain_id, status, 1 as delta from changes
    union all
    select client_id, domain_id, previous_status, -1 from changes where previous_status is not null
  ), counted_moves as (
    insert into job_counts as t (client_id, domain_id, status, count)
    select client_id, domain_id, status, sum(delta) from moves
    group by client_id, domain_id, status
    having sum(delta) <> 0
    order by client_id, domain_id, status
    on conflict (client_id, domain_id, status) do update set count = t.count + excluded.count
  ), counted_activity as (
    insert into job_activity as t (client_id, domain_id, minute, status, count)
    select client_id, domain_id, date_trunc('minute', updated_at, 'UTC') as minute, status, count(*)
    from changes
    group by client_id, domain_id, minute, status
    order by client_id, domain_id, minute, status
    on conflict (client_id, domain_id, minute, status)
      do update set count = t.count + excluded.count
  )
  select count(*) into given from numbered;
  if given > 0 or counted < last then
    update job_event_log set head = last + given, counted_through = last + given;
  end if;
  return last + given;
end
$$;
