import type { FastifyBaseLogger } from 'fastify';
import type { Caller } from '../auth/caller.js';
import type { HandlerType } from '../domain/handlers.js';
import { AppError } from '../http/errors.js';
import * as dispatch from '../repositories/dispatch.repository.js';
import type { ClaimedJob } from '../repositories/dispatch.repository.js';
import { completeJob } from '../usecases/complete-job.usecase.js';
import type { AppContext } from '../usecases/context.js';
import { buildEnvelope } from './envelope.js';
import { PUSH_KEY, versionKey } from './job-wakeups.js';
import { createAddressGuard, type AddressGuard } from './handlers/address-guard.js';
import { createConcurrencyLimit, deliverCommand } from './handlers/command.handler.js';
import { deliverHttp } from './handlers/http.handler.js';
import { readTrueFoundryRun, triggerTrueFoundryRun } from './handlers/truefoundry.handler.js';
import type { DeliveryOutcome, Envelope } from './types.js';

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
 */
export class Dispatcher {
  private readonly inFlight = new Set<Promise<void>>();
  private readonly aborts = new Set<AbortController>();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly guard: AddressGuard;
  private readonly commands;
  private readonly kinds: HandlerType[];
  private stopWaking: (() => void) | undefined;
  private pumping = false;
  private pumpAgain = false;
  private stopped = false;

  constructor(
    private readonly ctx: AppContext,
    private readonly options: DispatcherOptions,
    private readonly log: FastifyBaseLogger,
  ) {
    this.guard = createAddressGuard(options.allowHosts);
    this.commands = createConcurrencyLimit(options.commandConcurrency);
    this.kinds = options.commandHandlers
      ? ['http', 'command', 'truefoundry']
      : ['http', 'truefoundry'];
  }

  start(): void {
    this.stopWaking = this.ctx.wakeups.onWake((keys) => {
      if (keys === undefined || keys.includes(PUSH_KEY)) this.pump();
    });
    this.every(this.options.pollMs, () => this.pump());
    this.every(this.options.reapMs, () => this.reap());
    this.every(this.options.watchMs, () => this.watchRuns());
    this.pump();
  }

  /** Stops claiming, aborts deliveries still running, and waits for them to record. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopWaking?.();
    for (const timer of this.timers) clearInterval(timer);
    for (const abort of this.aborts) abort.abort({ code: 'shutdown' });
    await Promise.allSettled([...this.inFlight]);
    await this.guard.close();
  }

  private every(ms: number, task: () => void | Promise<void>): void {
    const timer = setInterval(() => void task(), ms);
    timer.unref();
    this.timers.push(timer);
  }

  /** Claims as many jobs as there are free slots, until none are left to claim. */
  private pump(): void {
    if (this.stopped) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = true;
    void (async () => {
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
          for (const job of jobs) this.track(this.dispatch(job));
          if (jobs.length === free) this.pumpAgain = true;
        } while (this.pumpAgain && !this.stopped);
      } catch (error) {
        this.log.error({ err: error }, 'claiming jobs failed; retrying on the next wake-up');
      } finally {
        this.pumping = false;
      }
    })();
  }

  private track(delivery: Promise<void>): void {
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
      this.ctx.metrics.attempts.inc({ handler: job.handler.type, outcome: outcome.kind });
      if (job.handler.type !== 'command' && outcome.kind === 'handed-over')
        this.observeLatency(job);
      await this.record(job, outcome);
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
    const handler = job.handler;
    switch (handler.type) {
      case 'http':
        return deliverHttp(
          envelope,
          handler,
          { signal },
          {
            timeoutMs: this.options.httpTimeoutMs,
            guard: this.guard,
          },
        );
      case 'command':
        return this.commands.run(() => deliverCommand(envelope, handler, { signal }, {}));
      case 'truefoundry':
        return triggerTrueFoundryRun(
          envelope,
          handler,
          { signal },
          { timeoutMs: this.options.httpTimeoutMs, dispatcher: this.guard.dispatcher },
        );
      case 'worker':
        // Changed to a pull handler after it was claimed: let a worker take it.
        return Promise.resolve({
          kind: 'retry',
          error: { code: 'handler_changed', message: 'the version now uses pull workers' },
          retryAfterMs: 0,
        });
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
      if (reaped.some((job) => job.status === 'queued')) this.pump();
    } catch (error) {
      this.log.error({ err: error }, 'reaping leases and deadlines failed');
    }
  }

  /** Fails jobs whose TrueFoundry run ended FAILED or TERMINATED without a completion. */
  private async watchRuns(): Promise<void> {
    try {
      const runs = await dispatch.listWatchedRuns(this.ctx.db, 'truefoundry', 100);
      for (const job of runs) {
        if (job.handler.type !== 'truefoundry') continue;
        const run = await readTrueFoundryRun(job.handler, job.handler_ref, {
          timeoutMs: this.options.httpTimeoutMs,
          dispatcher: this.guard.dispatcher,
        });
        if (run.state === 'unknown') {
          this.log.warn({ job_id: job.job_id, error: run.error }, 'cannot read TrueFoundry run');
          continue;
        }
        if (run.state !== 'failed') continue;
        const failed = await dispatch.failAttempt(this.ctx.db, job.job_id, job.attempt, {
          code: 'truefoundry_run_failed',
          message: `TrueFoundry run ${job.handler_ref} ended ${run.status} without a completion`,
          status: run.status,
        });
        if (failed)
          this.ctx.metrics.jobsFinished.inc({ job_type: job.job_type, status: 'failure' });
      }
    } catch (error) {
      this.log.error({ err: error }, 'following TrueFoundry runs failed');
    }
  }
}
