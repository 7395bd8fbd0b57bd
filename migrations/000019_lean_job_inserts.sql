-- Fewer checks and one index less on every job written (run-job, claims that move a job, services
-- init over a whole domain): measured in BENCHMARKS.md, "Optimisation 18".
--
-- 1. The job id alone is the primary key. Job ids are unique across tenants (`jobs_job_id`
--    already said so), so `(client_id, job_id)` indexed the same rows a second time: every
--    insert, and every update that moves a job between indexes, wrote both. Lookups by tenant
--    and id now find the row by id and check its tenant.
-- 2. No foreign keys from jobs to domains and assignments. Neither is ever deleted (no route
--    deletes a domain; a replaced assignment revision is archived, its row kept), and a job is
--    only written for a target read, or checked still current, in the same statement or
--    transaction. The checks guarded nothing PIE can do, yet cost one lookup each per job
--    (0.7 s of a 100,000-service init) and a `for key share` lock on the parent row, which no
--    code relied on (it never waits for an archive or a domain's status change, updates of no
--    key) and which concurrent transactions starting jobs of one assignment all took on one row.
alter table jobs drop constraint jobs_client_id_assignment_id_fkey;
alter table jobs drop constraint jobs_client_id_domain_id_fkey;
alter table jobs drop constraint jobs_pkey;
alter table jobs add constraint jobs_pkey primary key using index jobs_job_id;
