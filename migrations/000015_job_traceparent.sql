-- The W3C trace context (`traceparent`) of the request that started a job, when tracing is on:
-- dispatch and delivery happen later, often in another process, and continue that trace from
-- here. Null when tracing was off; a nullable column without a default is added without
-- rewriting the table, and a null costs a row nothing beyond its null bitmap.
alter table jobs add column traceparent text;
