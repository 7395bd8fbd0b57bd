import type { FastifyBaseLogger } from 'fastify';
import type { AppContext } from '../usecases/context.js';
import { finishDoneBatches } from '../usecases/finish-batch.usecase.js';
import type { BackgroundService } from './background-service.js';
import { Periodic } from './background-service.js';
import type { OutageBackoff } from './outage-backoff.js';

/** How many batches one turn finishes at most. */
const FINISH_BATCH = 100;

/**
 * Finishes batches whose last job ended without a completion (cancelled, timed out, failed by
 * dispatch), or whose completion could not finish them: every `intervalMs`, in any process
 * (finishing a batch succeeds once, see finishBatch). A completion finishes its own batch at
 * once; this is the rest.
 */
export class BatchFinisherService implements BackgroundService {
  readonly name = 'batch finisher';
  private readonly loop: Periodic;

  constructor(
    private readonly ctx: AppContext,
    intervalMs: number,
    private readonly backoff: OutageBackoff,
    private readonly log: FastifyBaseLogger,
  ) {
    this.loop = new Periodic(
      intervalMs,
      () => this.finish(),
      () => backoff.paused,
    );
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  private async finish(): Promise<void> {
    try {
      const finished = await finishDoneBatches(this.ctx, FINISH_BATCH);
      if (finished > 0) this.log.debug({ finished }, 'finished batches');
      this.backoff.succeeded();
    } catch (error) {
      this.backoff.failed(error, 'finishing batches');
    }
  }
}
