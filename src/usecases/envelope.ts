import type { CallbackTokens } from '../auth/callback-tokens.js';
import type { ClaimedJob } from '../lifecycle/claim.js';
import type { Envelope } from '../domain/delivery.js';

/**
 * The envelope of a claimed attempt, with a callback token for that attempt only and the trace
 * context stored with the job, if any.
 */
export async function buildEnvelope(
  job: ClaimedJob,
  publicUrl: string,
  callbacks: CallbackTokens,
): Promise<Envelope> {
  const jobPath = `${publicUrl}/v2/models/${encodeURIComponent(job.model_id)}/versions/${encodeURIComponent(job.model_version)}/jobs/${job.job_id}`;
  return {
    job_id: job.job_id,
    job_type: job.job_type,
    attempt: job.attempt,
    model_id: job.model_id,
    model_version: job.model_version,
    client_id: job.client_id,
    domain_id: job.domain_id,
    service_id: job.service_id,
    assignment_id: job.assignment_id,
    assignment_key: job.assignment_key,
    config: job.config,
    input: job.input,
    features: job.features,
    trigger: job.trigger,
    deadline: job.deadline,
    callback: {
      url: `${jobPath}/complete`,
      heartbeat_url: `${jobPath}/heartbeat`,
      token: await callbacks.sign(job),
    },
    // Left out rather than null when there is none: tracing off changes nothing handlers see.
    ...(job.traceparent === null ? {} : { traceparent: job.traceparent }),
  };
}
