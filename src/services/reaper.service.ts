import { reapLeasesAndDeadlines } from '../usecases/deliver-jobs.usecase.js';
import type { AppContext } from '../usecases/context.js';
import type { BackgroundService } from './background-service.js';
import { Periodic } from './background-service.js';
import type { OutageBackoff } from './outage-backoff.js';

/** How many jobs one turn puts back, and fails, at most. */
const REAP_BATCH = 500;

/**
 * Puts back jobs whose lease ran out (their holder died or went silent) and fails jobs past
 * their deadline, every `intervalMs`, in any process: each turn's statements skip rows
 * another process is reaping.
 */
export class ReaperService implements BackgroundService {
  readonly name = 'lease and deadline reaper';
  private readonly loop: Periodic;

  constructor(
    private readonly ctx: AppContext,
    intervalMs: number,
    private readonly backoff: OutageBackoff,
  ) {
    this.loop = new Periodic(
      intervalMs,
      () => this.reap(),
      () => backoff.paused,
    );
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  private async reap(): Promise<void> {
    try {
      await reapLeasesAndDeadlines(this.ctx, REAP_BATCH);
      this.backoff.succeeded();
    } catch (error) {
      this.backoff.failed(error, 'reaping leases and deadlines');
    }
  }
}
