import type { Queryable } from '../db/database.js';
import { AppError } from '../domain/errors.js';
import type { JobTrigger } from '../domain/job-trigger.js';
import type { TriggeredEvent } from '../domain/triggered-event.js';
import type { EmitJobEvent } from '../lifecycle/job-events.js';
import type { Subscription } from '../repositories/subscriptions.repository.js';
import { startJob } from './start-job.js';

/**
 * Starts the job a fired subscription asks for: through its action's assignment key, service
 * and job type, with its stored input and priority, and the `trigger` and `lineage` its event
 * gives. `started` runs in the same transaction once the job exists. PIE's own refusals
 * (inactive domain, archived assignment, contract mismatch...) are the subscription's outcome,
 * answered as an error event; a database fault is thrown, and undoes the caller's transaction.
 */
export async function startSubscriptionJob(
  q: Queryable,
  emit: EmitJobEvent,
  subscription: Subscription,
  fired: { trigger: JobTrigger; lineage: string[]; started?: (jobId: string) => Promise<void> },
): Promise<TriggeredEvent> {
  const id = subscription.subscription_id;
  try {
    const jobType = subscription.action.job_type;
    const job = await startJob(q, {
      clientId: subscription.client_id,
      domainId: subscription.domain_id,
      serviceId: subscription.action.service_id,
      key: subscription.action.assignment_key,
      jobType,
      input: subscription.input,
      subscribe: false,
      trigger: fired.trigger,
      lineage: fired.lineage,
      models: '*',
      priority: subscription.action.priority ?? undefined,
    });
    await fired.started?.(job.job_id);
    emit({ type: 'queued', jobType, count: 1, wake: job.wake });
    return { subscription_id: id, job_id: job.job_id };
  } catch (error) {
    if (!(error instanceof AppError)) throw error;
    return { subscription_id: id, error: error.message };
  }
}
