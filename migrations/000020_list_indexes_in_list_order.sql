-- The jobs list orders by creation time, then job id, both descending (`listJobs`). Two of its
-- indexes kept another order within one creation time: `jobs_by_domain` (the unfiltered list)
-- had the job id ascending, and `jobs_by_service` no job id at all. Jobs started by one
-- statement (a services init, a bulk batch, a schedule's tick) share their creation time, so a
-- page of those lists read every job of that statement and sorted them: after an init of 100,000
-- services, 44,000 rows for the second page of the unfiltered list (49 ms), growing with the
-- init. In the list's own order, a page reads one page of rows.
--
-- Rebuilding the two indexes reads the jobs table once each, holding off writes to it meanwhile
-- (a few seconds per million jobs on the machine of BENCHMARKS.md).
drop index jobs_by_domain;
create index jobs_by_domain on jobs (client_id, domain_id, created_at desc, job_id desc);
drop index jobs_by_service;
create index jobs_by_service on jobs (client_id, domain_id, service_id, created_at desc, job_id desc);
