-- A sequencer turn read the whole event log. Its update found the rows to number by `seq`
-- alone, and `seq` has only the partial index of the rows not yet numbered
-- (`job_events_unsequenced`, where position is null), which a condition without
-- `position is null` cannot use: every turn joined its few rows against a scan of the whole
-- table. The log keeps an hour of events (PIE_EVENTS_RETENTION_S), so a turn's cost grew with
-- them: after the bench's loads, 113 ms a turn over 400,000 kept events, a core of this
-- machine's two, and dispatch latency rose from 1 to 6 ms (BENCHMARKS.md, optimisation 23).
-- Saying `position is null` of the row to number lets the turn find each one through that
-- index. It changes no answer: the rows `todo` picked have no position, and the turn holds the
-- log's lock, so no other turn numbers them meanwhile.
--
-- Otherwise as in 000017, which explains the statement.
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
    update job_events e set position = last + todo.n
    from todo where e.seq = todo.seq and e.position is null
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
