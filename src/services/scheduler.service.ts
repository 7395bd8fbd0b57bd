import type { FastifyBaseLogger } from 'fastify';
import type { AppContext } from '../usecases/context.js';
import { fireDueSchedules } from '../usecases/fire-schedules.usecase.js';
import { Periodic, type BackgroundService } from './background-service.js';
import { OutageBackoff } from './outage-backoff.js';

/** Ticks one turn fires at most; more wait for the next turn, most overdue first. */
const TICKS_PER_TURN = 100;

/**
 * Fires schedules' ticks as they come, every `pollMs` (PIE_SCHEDULE_POLL_MS), in every
 * process: each tick is fired by whichever process claims it first, and by no other (see
 * migration 000012). A turn is one indexed read when nothing is due, so polling often costs
 * little, and a tick fires at most about `pollMs` late.
 */
export class SchedulerService implements BackgroundService {
  readonly name = 'scheduler';
  private readonly loop: Periodic;
  private readonly backoff: OutageBackoff;

  constructor(
    private readonly ctx: AppContext,
    pollMs: number,
    private readonly log: Pick<FastifyBaseLogger, 'debug' | 'warn' | 'info' | 'error'>,
  ) {
    this.backoff = new OutageBackoff(log, 'the scheduler');
    this.loop = new Periodic(
      pollMs,
      () => this.fire(),
      () => this.backoff.paused,
    );
  }

  start(): void {
    this.loop.start();
  }

  /** Waits for the tick being fired, whose transaction then commits or rolls back whole. */
  stop(): Promise<void> {
    return this.loop.stop();
  }

  private async fire(): Promise<void> {
    try {
      const ticks = await fireDueSchedules(this.ctx, TICKS_PER_TURN);
      this.backoff.succeeded();
      for (const tick of ticks) {
        const { clientId, domainId, name } = tick.schedule;
        const where = `schedule "${name}" of ${clientId}/${domainId}`;
        if (tick.fault !== undefined) {
          this.log.error({ err: tick.fault }, `${where}: its action failed unexpectedly`);
        } else if (tick.outcome === 'failed') {
          this.log.debug(`${where}: its tick started nothing (see its last_error)`);
        }
      }
    } catch (error) {
      this.backoff.failed(error, 'firing schedules');
    }
  }
}
