-- The payload of pie_jobs now tells pull and push apart: `model/version` for each version that
-- gained queued worker jobs, and `*` when any push (http, command, truefoundry) job was queued.
-- Push dispatchers then wake only for push work: creating a job for pull workers no longer
-- costs every dispatcher a claim query.
create or replace function pie_notify_jobs() returns trigger
language plpgsql as $$
declare
  keys text;
  total integer;
begin
  select string_agg(distinct key, ','), count(distinct key)
    into keys, total
    from (
      select case when handler_type = 'worker' then model_id || '/' || model_version else '*' end
        as key
      from new_rows where status = 'queued'
    ) as queued;
  if total > 0 then
    perform pg_notify('pie_jobs', case when total <= 20 then keys else '' end);
  end if;
  return null;
end
$$;
