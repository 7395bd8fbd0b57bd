-- A job's own changes, in order, for `GET .../jobs/{job_id}/events` (the console's timeline of a
-- job with its attempts): one index range per job however many other jobs the log holds.
--
-- Partial, on numbered rows only, like `job_events_by_domain`: the route reads only events the
-- sequencer has numbered (what the domain's stream has sent or will send). A row gets its entry
-- here when the sequencer's update gives it a position, after commit and off the request's path,
-- not when the trigger inserts it in the request's transaction (its position is null then, so
-- the insert that runs a job, claims it or completes it writes nothing to this index). The
-- sequencer's update already writes new index entries (it changes `position`, which other
-- indexes hold, so it is never a HOT update); this adds one more. The table holds
-- PIE_EVENTS_RETENTION_S (1 h by default) of changes, so building the index is quick.
create index job_events_by_job on job_events (client_id, job_id, position)
  where position is not null;
