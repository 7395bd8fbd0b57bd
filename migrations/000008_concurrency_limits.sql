-- Concurrency limits: `max_in_flight` caps the dispatched and running jobs of a model version
-- (all tenants together) and of a client (all its jobs); null is unlimited, 0 holds every job
-- queued (a pause). Claims enforce them (src/lifecycle/claim.ts says how): a claim that may hand
-- out a limited version's or client's jobs locks that version's or client's row first, so claims
-- of one limit take turns and each counts the jobs in flight after the previous one committed.
alter table model_versions add column max_in_flight integer check (max_in_flight >= 0);
alter table clients add column max_in_flight integer check (max_in_flight >= 0);

-- Which limits exist: a claim checks this first, and claims as before when there are none.
create index model_versions_limited on model_versions (model_id, model_version)
  where max_in_flight is not null;
create index clients_limited on clients (client_id) where max_in_flight is not null;

-- The jobs in flight of one version or one client, counted under its limit: only dispatched and
-- running jobs are indexed, so a count reads at most as many entries as the limit allows.
create index jobs_version_in_flight on jobs (model_id, model_version)
  where status in ('dispatched', 'running');
create index jobs_client_in_flight on jobs (client_id)
  where status in ('dispatched', 'running');
