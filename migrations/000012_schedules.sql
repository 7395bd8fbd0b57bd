-- Schedules: a cron expression, read in an IANA time zone, that fires an action in a domain
-- (services init, or one job through an assignment) at each of its ticks.
--
-- Exactly once, across any number of processes, rests on next_run_at alone: it is the tick
-- the schedule owes. A process fires a tick in one transaction that
--   1. locks the schedule's row if it is still owed that tick
--      (`... where next_run_at = $due for update skip locked`; a process that finds the row
--      locked, or owed a later tick, leaves it),
--   2. runs the action (its jobs are inserted in the same transaction), and
--   3. moves next_run_at on with a compare-and-set (`update ... where next_run_at = $due`).
-- The jobs and the new next_run_at commit together or not at all: a crash before the commit
-- leaves the tick owed (it fires on recovery, once), and once committed no one else can be
-- owed it. Ticks missed while no process ran are not replayed one by one: the firing takes
-- the next tick after the time it fires, so a backlog fires once. No table of past ticks is
-- kept, so nothing grows with time; last_* record the latest tick.
create table schedules (
  client_id text not null,
  domain_id text not null,
  name text not null,
  cron text not null,                 -- 5 fields, or 6 with seconds first (checked by PIE)
  timezone text not null default 'UTC',
  -- {"type": "services_init"} or
  -- {"type": "run_job", "assignment_key", "service_id" (null: domain scope), "job_type", "input"}
  action jsonb not null check (action ->> 'type' in ('services_init', 'run_job')),
  priority smallint check (priority between -100 and 100), -- null: the assignment's
  status text not null default 'active' check (status in ('active', 'paused')),
  -- The tick owed; null while paused. Milliseconds, so a value read back compares exactly.
  next_run_at timestamptz(3),
  last_run_at timestamptz(3),
  last_batch_id text,
  last_job_id text,
  last_error text,
  created_at timestamptz(3) not null default date_trunc('milliseconds', now()),
  updated_at timestamptz(3) not null default date_trunc('milliseconds', now()),
  primary key (client_id, domain_id, name),
  -- A schedule belongs to its domain: should a domain ever be deleted, its schedules go too.
  foreign key (client_id, domain_id) references domains (client_id, domain_id) on delete cascade,
  check (status = 'active' or next_run_at is null)
);

-- The scheduler's scan: active schedules whose tick is due, oldest first. Statements about one
-- schedule name its key and next_run_at but never its status, so they cannot take this index
-- (see migration 000010 for why that matters). The list reads the primary key, in name order.
create index schedules_due on schedules (next_run_at) where status = 'active';
