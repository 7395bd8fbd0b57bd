-- Job ids: 12 decimal digits, unique, and not sequential-looking. A sequence numbers the jobs;
-- a 4-round Feistel network over the 12-digit numbers (a bijection, so distinct numbers give
-- distinct ids) scrambles them. Cycle-walking keeps the result within 100000000000..999999999999,
-- so no id has a leading zero. No retries, no collisions, one multi-row insert for services init.
create sequence pie_job_number minvalue 0 maxvalue 899999999999 start 0;

create function pie_job_id(n bigint) returns text
language plpgsql immutable strict parallel safe as $$
declare
  x bigint := n + 100000000000;
  l bigint;
  r bigint;
  t bigint;
begin
  if n < 0 or n >= 900000000000 then
    raise exception 'job number % is out of range', n;
  end if;
  loop
    l := x / 1000000;
    r := x % 1000000;
    for round in 1..4 loop
      t := r;
      r := (l + (hashint8(r * 4 + round) & 2147483647) % 1000000) % 1000000;
      l := t;
    end loop;
    x := l * 1000000 + r;
    exit when x >= 100000000000;
  end loop;
  return x::text;
end
$$;

alter table jobs alter column job_id set default pie_job_id(nextval('pie_job_number'));

-- Lists page by (created_at, id) and cursors carry created_at as an ISO string, which holds
-- milliseconds; storing milliseconds keeps the cursor exact. Truncated rather than rounded,
-- so created_at never reads later than the now() other columns of the row were given.
alter table jobs alter column created_at type timestamptz(3),
  alter column created_at set default date_trunc('milliseconds', now());
alter table subscriptions alter column created_at type timestamptz(3),
  alter column created_at set default date_trunc('milliseconds', now());
alter table assignments alter column created_at type timestamptz(3),
  alter column created_at set default date_trunc('milliseconds', now());

-- The first completion's request and answer, replayed to an identical completion.
alter table jobs add column completion jsonb;

create index jobs_by_service on jobs (client_id, domain_id, service_id, created_at desc);

-- Idempotency-Key records, for the routes that start jobs (both run-job routes and services
-- init): the first answer to a key, kept 24 hours.
-- status_code is null while the first request is still in flight.
create table idempotency_keys (
  client_id text not null,
  caller text not null,
  key text not null,
  request_hash text not null,
  status_code integer,
  response jsonb,
  created_at timestamptz not null default now(),
  primary key (client_id, caller, key)
);

-- A subscription is matched by the completed job's client, domain and model.
drop index subscriptions_by_source;
create index subscriptions_by_source
  on subscriptions (client_id, domain_id, source_model_id, created_at)
  where status = 'active';
