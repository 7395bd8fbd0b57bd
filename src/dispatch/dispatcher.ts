import type { FastifyBaseLogger } from 'fastify';
import type { Caller } from '../auth/caller.js';
import type { HandlerType } from '../domain/handlers.js';
import { isDatabaseUnavailable } from '../db/connection-errors.js';
import { AppError } from '../domain/errors.js';
import * as dispatch from '../repositories/dispatch.repository.js';
import type { ClaimedJob } from '../repositories/dispatch.repository.js';
import { completeJob } from '../usecases/complete-job.usecase.js';
import type { AppContext } from '../usecases/context.js';
import { buildEnvelope } from './envelope.js';
import { PUSH_KEY, versionKey, wakeKey } from './job-wakeups.js';
import type { HandlerRegistry } from './handlers/handler-adapter.js';
import { createHandlerRegistry } from './handlers/handler-registry.js';
import type { DeliveryOutcome, Envelope } from '../domain/delivery.js';

export interface DispatcherOptions {
  /** Who holds the leases this process takes (`locked_by`). */
  holder: string;
  /** Deliveries in flight at once. */
  concurrency: number;
  /** Local command processes at once. */
  commandConcurrency: number;
  /** Whether this process runs `command` handlers at all. */
  commandHandlers: boolean;
  leaseS: number;
  /** The safety-net poll, for wake-ups missed or retries come due. */
  pollMs: number;
  /** How often expired leases and deadlines are checked. */
  reapMs: number;
  /** How often TrueFoundry runs are followed. */
  watchMs: number;
  httpTimeoutMs: number;
  /** Hosts, IPs or CIDRs http handlers may reach despite the SSRF guard. */
  allowHosts: string[];
}

// The dispatcher completes command jobs itself, as their handler would.
const DISPATCHER: Caller = {
  subject: 'pie-dispatcher',
  scopes: new Set(['admin']),
  clients: '*',
  models: '*',
};

/**
 * Hands queued jobs to push handlers (http, command, truefoundry), at least once: a job is
 * claimed under a lease, delivered, and its outcome recorded against that attempt. Wakes on
 * NOTIFY, polls slowly as a safety net, reaps expired leases and overdue jobs, and follows
 * TrueFoundry runs. Pull (worker) jobs wait for workers to claim them instead.
 *
 * While the database is unreachable the loops back off (one warning per outage, not one error
 * per tick) and resume by themselves when it answers again.
 */
export class Dispatcher {
  private readonly inFlight = new Set<Promise<void>>();
  /** Claims, reaps and watches running now, so that stop() can wait for them. */
  private readonly tasks = new Set<Promise<void>>();
  private readonly aborts = new Set<AbortController>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly handlers: HandlerRegistry;
  private readonly kinds: HandlerType[];
  private stopWaking: (() => void) | undefined;
  private pumping = false;
  private pumpAgain = false;
  private stopped = false;
  /** Database outage backoff: loops skip their turn until then. */
  private pausedUntil = 0;
  private outageFailures = 0;

  constructor(
    private readonly ctx: AppContext,
    private readonly options: DispatcherOptions,
    private readonly log: FastifyBaseLogger,
  ) {
    this.handlers = createHandlerRegistry(options);
    this.kinds = [...this.handlers.pushTypes];
  }

  start(): void {
    this.stopWaking = this.ctx.wakeups.onWake((keys) => {
      // Any wake-up means the database answered someone just now: end an outage backoff.
      this.pausedUntil = 0;
      if (keys === undefined || keys.includes(PUSH_KEY)) this.pump();
    });
    this.every(this.options.pollMs, async () => this.pump());
    this.every(this.options.reapMs, () => this.reap());
    this.every(this.options.watchMs, () => this.watchRuns());
    this.pump();
  }

  /**
   * Stops claiming, gives deliveries in flight up to `graceMs` to finish, aborts the rest, and
   * releases every job this process still holds (back to the queue, its attempt given back),
   * so another process, or this one restarted, delivers it at once rather than after its lease.
   */
  async stop(graceMs = 0): Promise<void> {
    this.stopped = true;
    this.stopWaking?.();
    for (const timer of this.timers) clearInterval(timer);
    // A claim under way may still start deliveries: let it, so they count as in flight.
    await Promise.allSettled([...this.tasks]);
    if (this.inFlight.size > 0 && graceMs > 0) {
      this.log.info(
        `shutting down: waiting up to ${graceMs / 1000} s for ${this.inFlight.size} deliveries`,
      );
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...this.inFlight]),
        new Promise((resolve) => (timer = setTimeout(resolve, graceMs))),
      ]);
      clearTimeout(timer);
    }
    for (const abort of this.aborts) abort.abort({ code: 'shutdown' });
    await Promise.allSettled([...this.inFlight]);
    await this.releaseHeld();
    await this.handlers.close();
  }

  private async releaseHeld(): Promise<void> {
    try {
      const released = await dispatch.releaseHeldJobs(this.ctx.db, this.options.holder);
      if (released.length === 0) return;
      this.log.info(`shutting down: released ${released.length} jobs back to the queue`);
      this.ctx.wakeups.announce([...new Set(released.map(wakeKey))]);
    } catch (error) {
      // Their leases expire instead, and the reaper puts them back.
      this.log.warn({ err: error }, 'shutting down: could not release held jobs');
    }
  }

  private every(ms: number, task: () => Promise<void>): void {
    const timer = setInterval(() => this.run(task), ms);
    timer.unref();
    this.timers.push(timer);
  }

  /** Runs one loop's turn, unless stopped or backing off from a database outage. */
  private run(task: () => Promise<void>): void {
    if (this.stopped || Date.now() < this.pausedUntil) return;
    this.track(this.tasks, task);
  }

  /** Starts `task`, keeping its promise in `set` until it settles. */
  private track(set: Set<Promise<void>>, task: () => Promise<void>): void {
    const running = task();
    set.add(running);
    void running.finally(() => set.delete(running));
  }

  /** Logs a failed loop turn; a database outage pauses the loops with growing backoff. */
  private failed(error: unknown, what: string): void {
    if (!isDatabaseUnavailable(error)) {
      this.log.error({ err: error }, `${what} failed; retrying on the next turn`);
      return;
    }
    this.outageFailures += 1;
    const backoffMs = Math.min(250 * 2 ** this.outageFailures, OUTAGE_BACKOFF_MAX_MS);
    this.pausedUntil = Date.now() + backoffMs;
    if (this.outageFailures === 1) {
      this.log.warn(
        { err: error instanceof Error ? error.message : String(error) },
        'database unavailable: dispatch paused, retrying with backoff',
      );
    }
  }

  private succeeded(): void {
    if (this.outageFailures === 0) return;
    this.log.info(`database reachable again after ${this.outageFailures} failed tries`);
    this.outageFailures = 0;
    this.pausedUntil = 0;
  }

  /** Claims as many jobs as there are free slots, until none are left to claim. */
  private pump(): void {
    if (this.stopped || Date.now() < this.pausedUntil) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    this.track(this.tasks, async () => {
      try {
        do {
          this.pumpAgain = false;
          const free = this.options.concurrency - this.inFlight.size;
          if (free <= 0) break;
          const jobs = await dispatch.claimPushJobs(
            this.ctx.db,
            this.options.holder,
            this.options.leaseS,
            free,
            this.kinds,
          );
          this.succeeded();
          for (const job of jobs) this.deliverTracked(job);
          if (jobs.length === free) this.pumpAgain = true;
        } while (this.pumpAgain && !this.stopped);
      } catch (error) {
        this.failed(error, 'claiming jobs');
      } finally {
        this.pumping = false;
      }
    });
  }

  private deliverTracked(job: ClaimedJob): void {
    const delivery = this.dispatch(job);
    this.inFlight.add(delivery);
    void delivery.finally(() => {
      this.inFlight.delete(delivery);
      this.pump();
    });
  }

  private async dispatch(job: ClaimedJob): Promise<void> {
    const abort = new AbortController();
    this.aborts.add(abort);
    const untilDeadline = Math.max(0, Date.parse(job.deadline) - Date.now());
    const deadline = setTimeout(() => abort.abort({ code: 'timeout' }), untilDeadline);
    // A command runs as long as it runs; keep its lease alive meanwhile.
    const renew = setInterval(
      () =>
        void dispatch
          .renewLease(this.ctx.db, job.job_id, job.attempt, this.options.leaseS, false)
          .catch(() => undefined),
      (this.options.leaseS * 1000) / 3,
    );
    try {
      const envelope = await buildEnvelope(job, this.ctx.publicUrl(), this.ctx.callbacks);
      // A command has its job once started; an http or TrueFoundry handler once it accepts.
      if (job.handler.type === 'command') this.observeLatency(job);
      const outcome = await this.deliver(job, envelope, abort.signal);
      if (outcome.kind === 'retry' && isShutdown(abort.signal)) {
        // Stopped by the shutdown, not failed by the handler: stop() releases the job.
        this.ctx.metrics.attempts.inc({ handler: job.handler.type, outcome: 'released' });
        return;
      }
      this.ctx.metrics.attempts.inc({ handler: job.handler.type, outcome: outcome.kind });
      if (job.handler.type !== 'command' && outcome.kind === 'handed-over')
        this.observeLatency(job);
      await this.recordThroughOutage(job, outcome, abort.signal);
    } catch (error) {
      this.log.error({ err: error, job_id: job.job_id }, 'dispatch failed; the lease will expire');
    } finally {
      clearTimeout(deadline);
      clearInterval(renew);
      this.aborts.delete(abort);
    }
  }

  private observeLatency(job: ClaimedJob): void {
    if (job.attempt !== 1) return;
    const seconds = (Date.now() - Date.parse(job.created_at)) / 1000;
    this.ctx.metrics.dispatchLatency.observe({ handler: job.handler.type }, seconds);
  }

  private deliver(
    job: ClaimedJob,
    envelope: Envelope,
    signal: AbortSignal,
  ): Promise<DeliveryOutcome> {
    return this.handlers.deliver(envelope, job.handler, { signal });
  }

  /**
   * Records the outcome, retrying while the database is unreachable: the handler has done its
   * part, and losing that would mean delivering the job again once its lease ran out. Gives
   * up when the lease would have (another process may have taken the job by then, and the
   * fenced write would change nothing) or at the end of a shutdown's grace.
   */
  private async recordThroughOutage(
    job: ClaimedJob,
    outcome: DeliveryOutcome,
    signal: AbortSignal,
  ): Promise<void> {
    const giveUpAt = Date.now() + this.options.leaseS * 1000;
    for (let delayMs = 250; ; delayMs = Math.min(delayMs * 2, OUTAGE_BACKOFF_MAX_MS)) {
      try {
        await this.record(job, outcome);
        return;
      } catch (error) {
        if (!isDatabaseUnavailable(error) || Date.now() + delayMs > giveUpAt) throw error;
        if (isShutdown(signal)) throw error;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, delayMs);
          function done() {
            clearTimeout(timer);
            signal.removeEventListener('abort', done);
            resolve();
          }
          signal.addEventListener('abort', done);
        });
      }
    }
  }

  private async record(job: ClaimedJob, outcome: DeliveryOutcome): Promise<void> {
    const { db, metrics } = this.ctx;
    switch (outcome.kind) {
      case 'handed-over':
        await dispatch.markHandedOver(db, job.job_id, job.attempt, outcome.reference ?? null);
        return;
      case 'finished':
        try {
          await completeJob(
            this.ctx,
            DISPATCHER,
            { modelId: job.model_id, modelVersion: job.model_version, jobId: job.job_id },
            {
              status: outcome.status,
              output: outcome.output ?? undefined,
              error: outcome.error,
              attempt: job.attempt,
            },
          );
        } catch (error) {
          // Cancelled or timed out meanwhile: the job's fate is already recorded.
          if (!(error instanceof AppError)) throw error;
        }
        return;
      case 'retry': {
        const status = await dispatch.retryOrFail(
          db,
          job.job_id,
          job.attempt,
          outcome.error,
          outcome.retryAfterMs,
        );
        if (status === 'failure') metrics.jobsFinished.inc({ job_type: job.job_type, status });
        if (status === 'queued' && outcome.retryAfterMs === 0) {
          // Due again at once, possibly for pull workers now (a changed handler).
          this.ctx.wakeups.announce([versionKey(job.model_id, job.model_version), PUSH_KEY]);
        }
        return;
      }
      case 'fail':
        if (await dispatch.failAttempt(db, job.job_id, job.attempt, outcome.error)) {
          metrics.jobsFinished.inc({ job_type: job.job_type, status: 'failure' });
        }
        return;
    }
  }

  private async reap(): Promise<void> {
    try {
      const reaped = [
        ...(await dispatch.reapExpiredLeases(this.ctx.db, 500)),
        ...(await dispatch.failOverdueJobs(this.ctx.db, 500)),
      ];
      for (const job of reaped) {
        if (job.status === 'failure') {
          this.ctx.metrics.jobsFinished.inc({ job_type: job.job_type, status: 'failure' });
        }
      }
      this.succeeded();
      if (reaped.some((job) => job.status === 'queued')) this.pump();
    } catch (error) {
      this.failed(error, 'reaping leases and deadlines');
    }
  }

  /** Fails jobs whose TrueFoundry run ended FAILED or TERMINATED without a completion. */
  private async watchRuns(): Promise<void> {
    try {
      const runs = await dispatch.listWatchedRuns(this.ctx.db, 'truefoundry', 100);
      for (const job of runs) {
        const run = await this.handlers.follow(job.handler, job.handler_ref);
        if (run?.state === 'unknown') {
          this.log.warn({ job_id: job.job_id, error: run.error }, 'cannot read TrueFoundry run');
          continue;
        }
        if (run?.state !== 'failed') continue;
        const failed = await dispatch.failAttempt(this.ctx.db, job.job_id, job.attempt, run.error);
        if (failed)
          this.ctx.metrics.jobsFinished.inc({ job_type: job.job_type, status: 'failure' });
      }
    } catch (error) {
      this.failed(error, 'following TrueFoundry runs');
    }
  }
}

const OUTAGE_BACKOFF_MAX_MS = 5000;

function isShutdown(signal: AbortSignal): boolean {
  const reason: unknown = signal.reason;
  return (
    signal.aborted &&
    typeof reason === 'object' &&
    reason !== null &&
    'code' in reason &&
    reason.code === 'shutdown'
  );
}
