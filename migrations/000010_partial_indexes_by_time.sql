-- Statements about one job (complete, cancel, hand over, renew a lease, retry or fail an
-- attempt) find it by its id and state the statuses it may be in. Where a partial index's
-- condition was those statuses alone, the planner could also read that whole index instead;
-- after an ANALYZE at a quiet moment (no job in flight, or none open) it took the index for
-- empty and preferred it to the job's own key. With jobs in flight again, every completion
-- read all of its client's in-flight jobs and their dead index entries: with a million jobs
-- kept, the completion route's p50 doubled (78 ms against 41 ms, four workers). Each of these
-- partial indexes now also names a time column that the status implies, which statements
-- about one job never state; only the statements that read the index say it
-- (src/repositories/indexed-job-sets.ts). The check below keeps the time columns true to the
-- status, so each index still holds exactly the jobs of its statuses.

-- Rows written before the check: a final job has its finish time, an open one none, and a
-- job in flight its dispatch time (every transition has always written them so; this only
-- makes sure before the check is added).
update jobs set finished_at = updated_at
  where status in ('success', 'failure', 'cancelled') and finished_at is null;
update jobs set finished_at = null
  where status in ('queued', 'dispatched', 'running') and finished_at is not null;
update jobs set dispatched_at = updated_at
  where status in ('dispatched', 'running') and dispatched_at is null;

alter table jobs add constraint jobs_times_follow_status check (
  (finished_at is null) = (status in ('queued', 'dispatched', 'running'))
  and (dispatched_at is not null or status not in ('dispatched', 'running')));

drop index jobs_version_in_flight;
drop index jobs_client_in_flight;
drop index jobs_open_deadlines;
drop index jobs_finished;

create index jobs_version_in_flight on jobs (model_id, model_version)
  where status in ('dispatched', 'running') and dispatched_at is not null;
create index jobs_client_in_flight on jobs (client_id)
  where status in ('dispatched', 'running') and dispatched_at is not null;
create index jobs_open_deadlines on jobs (deadline_at)
  where status in ('queued', 'dispatched', 'running') and finished_at is null;
create index jobs_finished on jobs (finished_at)
  where status in ('success', 'failure', 'cancelled') and finished_at is not null;
