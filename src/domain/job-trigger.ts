import type { JobStatus } from './job-status.js';

/**
 * What started a job that a subscription fired, stored on the job and sent in its envelope:
 * one completed inference job (`inference_complete`); the completions that joined one job
 * within a subscription's `debounce_s`; or a batch whose last job ended (`batch_complete`).
 */
export type JobTrigger =
  | { subscription_id: string; job_id: string; output: unknown }
  | { subscription_id: string; job_ids: string[]; outputs: unknown[]; count: number }
  | {
      subscription_id: string;
      batch_id: string;
      counts: Record<JobStatus, number>;
      failed_services: string[];
    };
