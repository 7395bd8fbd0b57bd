-- What ANALYZE samples of the tables PIE analyzes itself where no autovacuum runs (the embedded
-- database always; see TableStatistics in src/db/vacuum.ts). Queries find jobs by keys,
-- statuses and times through indexes, never by what the JSON payloads hold, so the payloads are
-- not sampled at all, and every other column with a target of 10: a sample of 3,000 rows rather
-- than 30,000, still enough to tell a domain of 200,000 jobs from one of 5. ANALYZE of 200,000
-- jobs on the embedded database, where it runs on Node's only thread: 1.1 s before, 0.17 s
-- after. A column added to jobs later gets the default target (100) and with it the large
-- sample again: give it one here too.
do $$
declare
  col record;
begin
  for col in
    select a.attname, format_type(a.atttypid, a.atttypmod) = 'jsonb' as payload
    from pg_attribute a
    where a.attrelid = 'jobs'::regclass and a.attnum > 0 and not a.attisdropped
  loop
    execute format('alter table jobs alter column %I set statistics %s',
      col.attname, case when col.payload then 0 else 10 end);
  end loop;
end
$$;
alter table idempotency_keys alter column response set statistics 0;
