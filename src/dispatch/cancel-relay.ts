import type { FastifyBaseLogger } from 'fastify';
import type { Handler } from '../domain/handlers.js';
import type { CancelledAttempt } from '../lifecycle/job-events.js';
import type { BackgroundService } from '../services/background-service.js';
import type { AppContext } from '../usecases/context.js';
import { versionHandler } from '../usecases/deliver-jobs.usecase.js';
import type { HandlerRegistry } from './handlers/handler-adapter.js';

export interface CancelRelayOptions {
  /** Notices in flight at once. */
  concurrency: number;
  /** How long one notice may take. */
  timeoutMs: number;
}

/** Past this many notices waiting (bulk cancels of unreachable handlers), new ones are dropped. */
const MAX_WAITING = 100_000;

/**
 * Tells handlers that a job they had was cancelled, in the process that cancelled it: an http
 * handler gets a signed `job.cancelled` POST, a TrueFoundry run is terminated (the adapters'
 * `cancel`). Best effort: each notice is tried once, with a timeout, a bounded number at once,
 * and counted in `pie_cancellations_delivered_total`. Commands are stopped by the process
 * delivering them (job-stops.ts), pull workers by their heartbeat's 409.
 */
export class CancelRelay implements BackgroundService {
  readonly name = 'cancel relay';
  private readonly waiting: CancelledAttempt[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  /** Handlers of the versions of the notices under way: a bulk cancel reads each once. */
  private handlers = new Map<string, Promise<Handler | undefined>>();
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly ctx: AppContext,
    private readonly registry: HandlerRegistry,
    private readonly options: CancelRelayOptions,
    private readonly log: FastifyBaseLogger,
  ) {}

  start(): void {
    this.unsubscribe = this.ctx.events.subscribe((events) => {
      for (const event of events) {
        const attempt = event.type === 'cancelled' ? event.attempt : undefined;
        if (attempt === undefined || !this.registry.cancelTypes.includes(attempt.handler_type)) {
          continue;
        }
        if (this.waiting.length >= MAX_WAITING) this.count(attempt.handler_type, 'dropped');
        else this.waiting.push(attempt);
      }
      this.next();
    });
  }

  /** Lets notices under way finish within `graceMs`, then abandons them and those waiting. */
  async stop(graceMs: number): Promise<void> {
    this.unsubscribe?.();
    for (const attempt of this.waiting.splice(0)) this.count(attempt.handler_type, 'dropped');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([...this.inFlight]),
      new Promise((resolve) => (timer = setTimeout(resolve, graceMs))),
    ]);
    clearTimeout(timer);
    this.abort.abort({ code: 'shutdown' });
    await Promise.allSettled([...this.inFlight]);
  }

  private next(): void {
    while (this.inFlight.size < this.options.concurrency && this.waiting.length > 0) {
      const attempt = this.waiting.shift()!;
      const notice = this.tell(attempt).finally(() => {
        this.inFlight.delete(notice);
        if (this.inFlight.size === 0 && this.waiting.length === 0) this.handlers.clear();
        this.next();
      });
      this.inFlight.add(notice);
    }
  }

  private async tell(attempt: CancelledAttempt): Promise<void> {
    const signal = AbortSignal.any([
      this.abort.signal,
      AbortSignal.timeout(this.options.timeoutMs),
    ]);
    try {
      const handler = await this.handlerOf(attempt);
      // Gone, or switched to another kind since: the notice would not mean anything to it.
      if (handler === undefined || handler.type !== attempt.handler_type) return;
      const outcome = await this.registry.cancel(handler, attempt, signal);
      if (outcome === undefined) return;
      this.count(attempt.handler_type, outcome.delivered ? 'delivered' : 'failed');
      if (!outcome.delivered) {
        this.log.warn(
          { job_id: attempt.job_id, error: outcome.error },
          'could not tell the handler its job was cancelled',
        );
      }
    } catch (error) {
      this.count(attempt.handler_type, 'failed');
      this.log.warn({ err: error, job_id: attempt.job_id }, 'could not relay a cancel');
    }
  }

  private handlerOf(attempt: CancelledAttempt): Promise<Handler | undefined> {
    const key = `${attempt.model_id}\u0000${attempt.model_version}`;
    let handler = this.handlers.get(key);
    if (handler === undefined) {
      handler = versionHandler(this.ctx, attempt.model_id, attempt.model_version);
      // A failed read is not remembered: the next notice reads again.
      handler.catch(() => this.handlers.delete(key));
      this.handlers.set(key, handler);
    }
    return handler;
  }

  private count(handler: string, outcome: 'delivered' | 'failed' | 'dropped'): void {
    this.ctx.metrics.cancellationsDelivered.inc({ handler, outcome });
  }
}
