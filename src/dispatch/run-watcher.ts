import type { FastifyBaseLogger } from 'fastify';
import type { BackgroundService } from '../services/background-service.js';
import { Periodic } from '../services/background-service.js';
import type { OutageBackoff } from '../services/outage-backoff.js';
import type { AppContext } from '../usecases/context.js';
import { failFollowedJob, jobsToFollow } from '../usecases/deliver-jobs.usecase.js';
import type { HandlerRegistry } from './handlers/handler-adapter.js';

/** How many runs one turn reads at most. */
const WATCH_BATCH = 100;

/**
 * Follows the TrueFoundry runs PIE started: a run that ended FAILED or TERMINATED without its
 * job's code completing the job fails the job's attempt. Runs that succeeded complete through
 * the callback; a job whose run never ends is bounded by its deadline.
 */
export class RunWatcher implements BackgroundService {
  readonly name = 'TrueFoundry run watcher';
  private readonly loop: Periodic;

  constructor(
    private readonly ctx: AppContext,
    private readonly handlers: HandlerRegistry,
    intervalMs: number,
    private readonly backoff: OutageBackoff,
    private readonly log: FastifyBaseLogger,
  ) {
    this.loop = new Periodic(
      intervalMs,
      () => this.watch(),
      () => backoff.paused,
    );
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  private async watch(): Promise<void> {
    try {
      for (const job of await jobsToFollow(this.ctx, 'truefoundry', WATCH_BATCH)) {
        const run = await this.handlers.follow(job.handler, job.handler_ref);
        if (run === undefined) continue;
        if (run.state === 'unknown') {
          this.log.warn({ job_id: job.job_id, error: run.error }, 'cannot read TrueFoundry run');
        } else if (run.state === 'failed') {
          await failFollowedJob(this.ctx, job, run.error);
        }
      }
    } catch (error) {
      this.backoff.failed(error, 'following TrueFoundry runs');
    }
  }
}
