import type { FastifyBaseLogger } from 'fastify';
import type { AppContext } from '../usecases/context.js';
import { fireDueSchedules, type FiredTick } from '../usecases/fire-schedules.usecase.js';
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
      const { fired, unfired } = await fireDueSchedules(this.ctx, TICKS_PER_TURN);
      this.backoff.succeeded();
      for (const tick of fired) {
        if (tick.fault !== undefined) {
          this.log.error({ err: tick.fault }, `${where(tick)}: its action failed unexpectedly`);
        } else if (tick.outcome === 'failed') {
          this.log.debug(`${where(tick)}: its tick started nothing (see its last_error)`);
        }
      }
      for (const tick of unfired) {
        this.log.error(
          { err: tick.error },
          `${where(tick)}: its tick could not be fired; retrying`,
        );
      }
    } catch (error) {
      this.backoff.failed(error, 'firing schedules');
    }
  }
}

function where(tick: Pick<FiredTick, 'schedule'>): string {
  const { clientId, domainId, name } = tick.schedule;
  return `schedule "${name}" of ${clientId}/${domainId}`;
}
