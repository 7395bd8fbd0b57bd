-- PIE's resources: clients (tenants) with their domains and services, models with their
-- versions, assignments, jobs and subscriptions. Every tenant-owned table leads its primary key
-- with client_id, so a tenant's rows sit together in every index and no query can reach another
-- tenant's row without naming its client.

create table clients (
  client_id text primary key,
  name text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table domains (
  client_id text not null references clients (client_id),
  domain_id text not null,
  status text not null default 'active' check (status in ('active', 'inactive')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (client_id, domain_id)
);

create table services (
  client_id text not null,
  domain_id text not null,
  service_id text not null,
  status text not null default 'active' check (status in ('active', 'departed')),
  -- what the operator gave, kept whole (keys no contract defines included)
  provided_features jsonb not null default '{}',
  -- provided_features resolved against the domain default contract; null without one
  resolved_features jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  departed_at timestamptz,
  primary key (client_id, domain_id, service_id),
  foreign key (client_id, domain_id) references domains (client_id, domain_id)
);

-- The model registry is global: every tenant runs the same registered versions.
create table models (
  model_id text primary key,
  description text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create table model_versions (
  model_id text not null references models (model_id),
  model_version text not null,
  features jsonb not null,            -- the frozen feature contract
  job_types jsonb not null default '["inference"]',
  handler jsonb not null default '{"type": "worker"}',
  timeout_s integer not null default 3600 check (timeout_s > 0),
  max_attempts integer not null default 5 check (max_attempts > 0),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (model_id, model_version)
);

create table assignments (
  client_id text not null,
  assignment_id uuid not null default gen_random_uuid(),
  domain_id text not null,
  service_id text,                    -- null at domain scope
  scope text not null check (scope in ('domain', 'service')),
  key text not null,
  model_id text not null,
  model_version text not null,
  status text not null default 'active' check (status in ('active', 'archived')),
  config jsonb not null default '{}',
  metadata jsonb not null default '{}',
  created_at timestamptz not null default now(),
  archived_at timestamptz,
  primary key (client_id, assignment_id),
  check ((scope = 'domain') = (service_id is null)),
  foreign key (client_id, domain_id) references domains (client_id, domain_id),
  foreign key (client_id, domain_id, service_id)
    references services (client_id, domain_id, service_id),
  foreign key (model_id, model_version) references model_versions (model_id, model_version)
);

-- At most one active revision per key and scope; archived revisions are history.
create unique index assignments_one_active_per_key
  on assignments (client_id, domain_id, coalesce(service_id, ''), key)
  where status = 'active';
create index assignments_revisions
  on assignments (client_id, domain_id, coalesce(service_id, ''), key, created_at desc);

create table jobs (
  client_id text not null,
  job_id text not null check (job_id ~ '^[1-9][0-9]{11}$'),
  domain_id text not null,
  service_id text,                    -- null for domain-scope jobs
  assignment_id uuid not null,
  assignment_key text not null,
  model_id text not null,
  model_version text not null,
  job_type text not null,
  status text not null default 'queued'
    check (status in ('queued', 'dispatched', 'running', 'success', 'failure', 'cancelled')),
  input jsonb not null default '{}',
  features jsonb,                     -- resolved features frozen at creation
  config jsonb not null default '{}', -- the assignment's config at creation
  trigger jsonb,                      -- {subscription_id, job_id, output} when a subscription started it
  lineage jsonb not null default '[]',-- subscription ids that led here, oldest first
  attempt integer not null default 0,
  max_attempts integer not null,
  deadline_at timestamptz not null,
  run_at timestamptz not null default now(),  -- earliest time a dispatcher may take it
  locked_by text,
  lease_expires_at timestamptz,
  output jsonb,
  error jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  dispatched_at timestamptz,
  finished_at timestamptz,
  primary key (client_id, job_id),
  foreign key (client_id, assignment_id) references assignments (client_id, assignment_id),
  foreign key (client_id, domain_id) references domains (client_id, domain_id)
);

-- Completion and worker routes name a job by its id alone; ids are unique across tenants.
create unique index jobs_job_id on jobs (job_id);
create index jobs_by_domain on jobs (client_id, domain_id, created_at desc, job_id);
create index jobs_ready on jobs (run_at) where status = 'queued';

create table subscriptions (
  client_id text not null,
  subscription_id uuid not null default gen_random_uuid(),
  domain_id text not null,
  event text not null default 'inference_complete' check (event in ('inference_complete')),
  source_model_id text not null,
  source_model_version text,          -- null matches every version
  source_service_id text,             -- null matches every service
  action_assignment_key text not null,
  action_service_id text,             -- null runs a domain-scope job
  action_job_type text not null,
  input jsonb not null default '{}',
  status text not null default 'active' check (status in ('active', 'paused')),
  created_by_job_id text,             -- the job whose subscribe: true created it
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (client_id, subscription_id),
  foreign key (client_id, domain_id) references domains (client_id, domain_id)
);

create index subscriptions_by_source
  on subscriptions (client_id, domain_id, source_model_id)
  where status = 'active';
