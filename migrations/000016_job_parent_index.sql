-- The console draws a job's lineage downwards: the jobs it led to. A job's parent is the job it
-- was retried from (`retry_of`), else the completed job whose subscription started it
-- (`trigger.job_id`, or the first of a debounced job's `trigger.job_ids`). A retry keeps its
-- original's trigger, so `retry_of` comes first: the retry hangs under the job it repeats, which
-- itself hangs under what triggered it. Jobs without a parent (most of them) are not in the index.
create index jobs_by_parent on jobs (
  client_id, domain_id,
  (coalesce(retry_of, trigger->>'job_id', trigger->'job_ids'->>0)),
  created_at desc, job_id desc
) where coalesce(retry_of, trigger->>'job_id', trigger->'job_ids'->>0) is not null;
