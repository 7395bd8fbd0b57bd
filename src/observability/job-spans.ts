import type { Attributes } from '@opentelemetry/api';

/**
 * The attributes every span about one job carries (dispatch, delivery, completion), so a
 * tracing backend can find a job's spans by its id, tenant or model. Prefixed `pie.`: none of
 * them has a semantic convention.
 */
export function jobAttributes(job: {
  job_id: string;
  client_id: string;
  domain_id: string;
  model_id: string;
  model_version: string;
  job_type: string;
  attempt: number;
  handler?: { type: string };
}): Attributes {
  return {
    'pie.job_id': job.job_id,
    'pie.client_id': job.client_id,
    'pie.domain_id': job.domain_id,
    'pie.model_id': job.model_id,
    'pie.model_version': job.model_version,
    'pie.job_type': job.job_type,
    'pie.attempt': job.attempt,
    ...(job.handler === undefined ? {} : { 'pie.handler_type': job.handler.type }),
  };
}
