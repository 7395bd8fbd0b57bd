-- NOTIFY inside a transaction makes PostgreSQL commit notifying transactions one at a time: at
-- 32 concurrent job inserts the trigger capped the whole database at about 1,100 commits/s
-- (5,800 without it; see BENCHMARKS.md). PIE now announces new jobs itself, after commit, in
-- one coalesced NOTIFY per tick (src/dispatch/job-wakeups.ts).
drop trigger jobs_notify_insert on jobs;
drop trigger jobs_notify_update on jobs;
drop function pie_notify_jobs();
