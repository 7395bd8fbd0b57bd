import type { JobEventBus } from '../lifecycle/job-events.js';
import type { Metrics } from './metrics.js';

/**
 * Counts job events into the process's metrics: jobs created (and of those, redriven), jobs
 * finished by status (cancelled ones included), and how long first attempts waited for a
 * handler.
 */
export function countJobEvents(bus: JobEventBus, metrics: Metrics): () => void {
  return bus.subscribe((events) => {
    for (const event of events) {
      switch (event.type) {
        case 'queued':
          metrics.jobsCreated.inc({ job_type: event.jobType }, event.count);
          if (event.redrive === true) {
            metrics.jobsRedriven.inc({ job_type: event.jobType }, event.count);
          }
          break;
        case 'dispatched':
          if (event.attempt === 1) {
            const seconds = (Date.now() - Date.parse(event.createdAt)) / 1000;
            metrics.dispatchLatency.observe({ handler: event.handler }, seconds);
          }
          break;
        case 'finished':
          metrics.jobsFinished.inc({ job_type: event.jobType, status: event.status });
          break;
        case 'cancelled':
          metrics.jobsFinished.inc({ job_type: event.jobType, status: 'cancelled' });
          break;
        case 'retried':
          break;
      }
    }
  });
}
