-- A sequencer turn read the whole event log. Its update found the rows to number by joining
-- them to `todo` on `seq`, and `seq` has only the partial index of the rows not yet numbered
-- (`job_events_unsequenced`, where position is null), which that join could not use: every
-- turn hashed its rows against a scan of the whole table. The log keeps an hour of events
-- (PIE_EVENTS_RETENTION_S), so a turn's cost grew with them: after the bench's loads, 113 ms
-- a turn over 400,000 kept events, most of a core, and dispatch latency went from 1 to 6 ms
-- (BENCHMARKS.md, optimisation 23).
--
-- Saying `position is null` in that join lets it use the index, but then the plan depends on
-- the statistics: taken when nothing waited (as they mostly are), they let PostgreSQL put the
-- waiting rows on the outside of a nested loop that ran the whole `todo` again for each, and
-- one turn over a backlog of thousands took a minute. So the turn no longer joins. It reads
-- the seqs to number, in order, into an array, then updates exactly those rows through the
-- index (`seq = any`) and gives each the position of its seq in the array, found by binary
-- search (`width_bucket` over an ascending array answers how many elements are <= the value,
-- which for an element is its 1-based place). No plan choice is left to make it slow.
--
-- Each statement of a volatile function takes its own snapshot, so the rows a turn numbers are
-- those committed when it read the seqs; the turn holds the log's row lock throughout, so no
-- other turn numbers them meanwhile. Every property the header of 000014 explains holds as
-- before. Otherwise as in 000017, which explains the counting.
create or replace function pie_sequence_job_events(max_rows integer) returns bigint
language plpgsql as $$
declare
  last bigint;
  counted bigint;
  given integer;
  todo bigint[];
begin
  select head, counted_through into last, counted from job_event_log for update;
  select coalesce(array_agg(seq order by seq), '{}') into todo
  from (
    select seq from job_events where position is null order by seq limit max_rows
  ) waiting;
  with numbered as (
    update job_events e set position = last + width_bucket(e.seq, todo)
    where e.seq = any(todo) and e.position is null
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
