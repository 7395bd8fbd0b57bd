-- Retention: finished jobs older than PIE_RETENTION_DAYS and idempotency records past 24 hours
-- are deleted in small batches (src/services/retention.service.ts). Each batch finds its rows
-- oldest first through one of these indexes, so it reads the rows it deletes and no others.
-- Only final statuses are indexed: open jobs are never candidates, and the index stays the size
-- of the finished backlog's ordering alone.
create index jobs_finished on jobs (finished_at)
  where status in ('success', 'failure', 'cancelled');
create index idempotency_keys_by_age on idempotency_keys (created_at);

-- Every filter of the jobs list (status, service_id, job_type, assignment_key, within a client's
-- domain, newest first by (created_at, job_id)) reads its own index in the list's order, so a
-- rare value (the few queued jobs among many finished ones) is found without walking the
-- domain's other jobs. jobs_by_domain serves the unfiltered list and jobs_by_service the
-- service filter; job_id runs descending here as the list does, so a page and its cursor are
-- one index range with no sort.
create index jobs_by_status on jobs (client_id, domain_id, status, created_at desc, job_id desc);
create index jobs_by_type on jobs (client_id, domain_id, job_type, created_at desc, job_id desc);
create index jobs_by_key on jobs (client_id, domain_id, assignment_key, created_at desc, job_id desc);
