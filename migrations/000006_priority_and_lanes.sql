-- Priority and fair lanes. Claims and push dispatch take the highest priority first and, within
-- one priority of one queue (a model version's pull queue, or the push queue), go round-robin
-- across (client, domain) lanes instead of oldest first.
--
-- Round-robin is kept in the index order by a virtual time, `lane_seq`, given to each job as it
-- is queued: one more than the last queued job of its lane, but never less than the lowest
-- `lane_seq` still waiting in its queue (the round being served now). A claim then reads the
-- queue in (priority desc, lane_seq) order: a lane's first job ties with every other lane's
-- current one, its second with their next, whatever the number of lanes, in one index scan.
-- A lane that was idle joins the current round rather than bringing credit from old rounds.
-- Concurrent inserts into one lane may draw the same number; a tie only puts two of a lane's
-- jobs in the same round.

alter table jobs add column priority smallint not null default 0
  check (priority between -100 and 100);
alter table jobs add column lane_seq bigint not null default 0;
-- Redrive: the failed or cancelled job this one was started again from.
alter table jobs add column retry_of text;

-- An assignment's priority is the default of the jobs run through it; a subscription's action
-- may set its jobs' own (null: the assignment's).
alter table assignments add column priority smallint not null default 0
  check (priority between -100 and 100);
alter table subscriptions add column action_priority smallint
  check (action_priority between -100 and 100);

drop index jobs_push_ready;
drop index jobs_pull_ready;
create index jobs_push_ready on jobs (priority desc, lane_seq, run_at, job_id)
  where status = 'queued' and handler_type <> 'worker';
create index jobs_pull_ready on jobs (model_id, model_version, priority desc, lane_seq, run_at, job_id)
  where status = 'queued' and handler_type = 'worker';
-- The last queued job of a lane, for the next one's lane_seq.
create index jobs_push_lane_tail on jobs (client_id, domain_id, priority, lane_seq)
  where status = 'queued' and handler_type <> 'worker';
create index jobs_pull_lane_tail on jobs (client_id, domain_id, model_id, model_version, priority, lane_seq)
  where status = 'queued' and handler_type = 'worker';

-- The lane_seq for the next job of a lane (see above). `round` is the lowest lane_seq among the
-- queue's jobs that are due now: a job waiting out a retry's backoff keeps its old number and
-- must not hold the round back for everyone. PL/pgSQL, not SQL: a SQL function that cannot be
-- inlined plans its queries again on every call, which doubled the run-job insert's time on the
-- embedded database; PL/pgSQL keeps their plans for the session.
create function pie_next_lane_seq(
  p_client text, p_domain text, p_handler_type text, p_model text, p_version text,
  p_priority smallint
) returns bigint
language plpgsql stable as $$
declare
  tail bigint;
  round bigint;
begin
  if p_handler_type = 'worker' then
    select lane_seq + 1 into tail from jobs
      where status = 'queued' and handler_type = 'worker' and client_id = p_client
        and domain_id = p_domain and model_id = p_model and model_version = p_version
        and priority = p_priority
      order by lane_seq desc limit 1;
    select lane_seq into round from jobs
      where status = 'queued' and handler_type = 'worker' and model_id = p_model
        and model_version = p_version and priority = p_priority and run_at <= now()
      order by lane_seq limit 1;
  else
    select lane_seq + 1 into tail from jobs
      where status = 'queued' and handler_type <> 'worker' and client_id = p_client
        and domain_id = p_domain and priority = p_priority
      order by lane_seq desc limit 1;
    select lane_seq into round from jobs
      where status = 'queued' and handler_type <> 'worker' and priority = p_priority
        and run_at <= now()
      order by lane_seq limit 1;
  end if;
  return greatest(tail, round, 0);
end
$$;
