-- The jobs list orders by creation time, then job id, both descending (`listJobs`).
-- `jobs_by_service` kept no job id, so a service's list over jobs that share a creation time
-- (started by one statement: a services init, a bulk batch, a schedule's tick) read all of them
-- and sorted them at every page. In the list's own order, a page reads one page of rows.
--
-- `jobs_by_domain` (the unfiltered list) keeps the job id ascending, although its list has the
-- same problem over such jobs: in the list's exact order, PostgreSQL's plans preferred it, with
-- a filter, over the status, type and key indexes (its heap order makes it look cheap), and the
-- embedded retained bench's status list went from 0.8 to 16 ms (BENCHMARKS.md, optimisation 20).
--
-- Rebuilding the index reads the jobs table once, holding off writes to it meanwhile (about
-- 1.6 s per million jobs on the machine of BENCHMARKS.md).
drop index jobs_by_service;
create index jobs_by_service on jobs (client_id, domain_id, service_id, created_at desc, job_id desc);
