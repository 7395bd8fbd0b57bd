import type { FastifyBaseLogger } from 'fastify';
import { isDatabaseUnavailable } from '../db/connection-errors.js';
import type { DeliveryOutcome } from '../domain/delivery.js';
import type { ClaimedJob } from '../lifecycle/claim.js';
import type { JobEvent } from '../lifecycle/job-events.js';
import { PUSH_KEY } from '../lifecycle/job-wakeups.js';
import type { BackgroundService } from '../services/background-service.js';
import { Periodic } from '../services/background-service.js';
import { OUTAGE_BACKOFF_MAX_MS, type OutageBackoff } from '../services/outage-backoff.js';
import type { AppContext } from '../usecases/context.js';
import {
  claimJobsToPush,
  endedAttempts,
  keepLease,
  noteDispatched,
  recordDelivery,
  releaseJobsHeldBy,
} from '../usecases/deliver-jobs.usecase.js';
import { buildEnvelope } from '../usecases/envelope.js';
import { jobAttributes } from '../observability/job-spans.js';
import { SpanStatusCode, withSpan, type Span } from '../observability/tracing.js';
import type { HandlerRegistry } from './handlers/handler-adapter.js';

export interface ClaimPumpOptions {
  /** Who holds the leases this process takes (`locked_by`). */
  holder: string;
  /** Deliveries in flight at once. */
  concurrency: number;
  leaseS: number;
  /** The safety-net poll, for wake-ups missed or retries come due. */
  pollMs: number;
}

/**
 * Hands queued jobs to push handlers (http, command, truefoundry), at least once: a job is
 * claimed under a lease, delivered through its handler's adapter, and what the delivery came
 * to is recorded against that attempt. Wakes when jobs are queued, and polls slowly as a
 * safety net. Pull (worker) jobs wait for workers to claim them instead.
 */
export class ClaimPump implements BackgroundService {
  readonly name = 'claim pump';
  private readonly inFlight = new Set<Promise<void>>();
  /** Each delivery under way, by job id, so that a cancel can stop it. */
  private readonly held = new Map<string, { job: ClaimedJob; abort: AbortController }>();
  private readonly poll: Periodic;
  private stopWaking: (() => void) | undefined;
  private stopFollowing: (() => void) | undefined;
  /** The last claim ran under a concurrency limit: jobs finishing may make room. */
  private limited = false;
  private stopHearing: (() => void) | undefined;
  /** The claim loop under way, if any, so that stop() can wait for it. */
  private pumping: Promise<void> | undefined;
  private pumpAgain = false;
  private stopped = false;

  constructor(
    private readonly ctx: AppContext,
    private readonly handlers: HandlerRegistry,
    private readonly options: ClaimPumpOptions,
    private readonly backoff: OutageBackoff,
    private readonly log: FastifyBaseLogger,
  ) {
    this.poll = new Periodic(options.pollMs, async () => this.pump());
  }

  start(): void {
    this.stopWaking = this.ctx.wakeups.onWake((keys) => {
      // Any wake-up means the database answered someone just now: end an outage backoff.
      this.backoff.resume();
      if (keys === undefined || keys.includes(PUSH_KEY)) this.pump();
    });
    // Under a limit, a job finishing in this process (a completion arriving, a cancel) makes
    // room at once; finishes elsewhere are caught by the poll.
    this.stopFollowing = this.ctx.events.subscribe((events) => {
      if (this.limited && events.some((event) => FREES_ROOM.has(event.type))) this.pump();
    });
    this.stopHearing = this.ctx.stops.onStop((jobIds) => {
      if (jobIds === undefined) void this.stopEnded([...this.held.values()].map((d) => d.job));
      else for (const jobId of jobIds) this.held.get(jobId)?.abort.abort(CANCELLED);
    });
    this.poll.start();
    this.pump();
  }

  /**
   * Aborts the deliveries among `jobs` whose attempt ended elsewhere: cancelled, or over
   * another way (then their outcome is recorded as usual, and the fenced write changes nothing).
   */
  private async stopEnded(jobs: ClaimedJob[]): Promise<void> {
    if (jobs.length === 0) return;
    try {
      for (const [jobId, end] of await endedAttempts(this.ctx, jobs)) {
        this.held.get(jobId)?.abort.abort(end === 'cancelled' ? CANCELLED : LEASE_LOST);
      }
    } catch (error) {
      // The database is away: the next lease renewal looks again.
      this.log.warn({ err: error }, 'could not check the jobs this process delivers');
    }
  }

  /**
   * Stops claiming, gives deliveries in flight up to `graceMs` to finish, aborts the rest, and
   * releases every job this process still holds (back to the queue, its attempt given back),
   * so another process, or this one restarted, delivers it at once rather than after its lease.
   */
  async stop(graceMs: number): Promise<void> {
    this.stopped = true;
    this.stopWaking?.();
    this.stopFollowing?.();
    this.stopHearing?.();
    await this.poll.stop();
    // A claim under way may still start deliveries: let it, so they count as in flight.
    await this.pumping;
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
    for (const { abort } of this.held.values()) abort.abort({ code: 'shutdown' });
    await Promise.allSettled([...this.inFlight]);
    await this.releaseHeld();
  }

  private async releaseHeld(): Promise<void> {
    try {
      const released = await releaseJobsHeldBy(this.ctx, this.options.holder);
      if (released > 0) this.log.info(`shutting down: released ${released} jobs back to the queue`);
    } catch (error) {
      // Their leases expire instead, and the reaper puts them back.
      this.log.warn({ err: error }, 'shutting down: could not release held jobs');
    }
  }

  /** Claims as many jobs as there are free slots, until none are left to claim. */
  private pump(): void {
    if (this.stopped || this.backoff.paused) return;
    if (this.pumping !== undefined) {
      this.pumpAgain = true;
      return;
    }
    this.pumping = this.claimWhileFree().finally(() => (this.pumping = undefined));
  }

  private async claimWhileFree(): Promise<void> {
    try {
      do {
        this.pumpAgain = false;
        const free = this.options.concurrency - this.inFlight.size;
        if (free <= 0) break;
        const { jobs, limited } = await claimJobsToPush(this.ctx, {
          holder: this.options.holder,
          leaseS: this.options.leaseS,
          limit: free,
          kinds: this.handlers.pushTypes,
        });
        this.limited = limited;
        this.backoff.succeeded();
        for (const job of jobs) this.deliverTracked(job);
        if (jobs.length === free) this.pumpAgain = true;
      } while (this.pumpAgain && !this.stopped);
    } catch (error) {
      this.backoff.failed(error, 'claiming jobs');
    }
  }

  private deliverTracked(job: ClaimedJob): void {
    const delivery = this.deliver(job);
    this.inFlight.add(delivery);
    void delivery.finally(() => {
      this.inFlight.delete(delivery);
      this.pump();
    });
  }

  /**
   * One span per dispatch, continuing the trace stored with the job (the request that started
   * it), or a trace of its own when none was stored; the delivery span is its child.
   */
  private deliver(job: ClaimedJob): Promise<void> {
    return withSpan(
      'pie.dispatch',
      { parent: job.traceparent, attributes: () => jobAttributes(job) },
      (span) => this.deliverInSpan(job, span),
    );
  }

  private async deliverInSpan(job: ClaimedJob, span: Span | undefined): Promise<void> {
    const abort = new AbortController();
    this.held.set(job.job_id, { job, abort });
    const untilDeadline = Math.max(0, Date.parse(job.deadline) - Date.now());
    const deadline = setTimeout(() => abort.abort({ code: 'timeout' }), untilDeadline);
    // A command runs as long as it runs; keep its lease alive meanwhile. A renewal refused
    // means the attempt ended elsewhere (a cancel whose announcement was missed, say): stop.
    const renew = setInterval(
      () =>
        void keepLease(this.ctx, job, this.options.leaseS)
          .then((kept) => (kept ? undefined : this.stopEnded([job])))
          .catch(() => undefined),
      (this.options.leaseS * 1000) / 3,
    );
    try {
      const envelope = await buildEnvelope(job, this.ctx.publicUrl(), this.ctx.callbacks);
      // A command has its job once started; an http or TrueFoundry handler once it accepts.
      if (job.handler.type === 'command') noteDispatched(this.ctx, job);
      const outcome = await this.handlers.deliver(envelope, job.handler, {
        signal: abort.signal,
      });
      if (abortCode(abort.signal) === 'cancelled') {
        // The job is final already: nothing to record, and nothing to retry.
        this.ctx.metrics.attempts.inc({ handler: job.handler.type, outcome: 'cancelled' });
        // Stopping the delivery is how this kind hears of a cancel (a command's process);
        // the kinds with a notice of their own are counted by the cancel relay.
        if (!this.handlers.cancelTypes.includes(job.handler.type)) {
          this.ctx.metrics.cancellationsDelivered.inc({
            handler: job.handler.type,
            outcome: 'delivered',
          });
        }
        return;
      }
      if (outcome.kind === 'retry' && isShutdown(abort.signal)) {
        // Stopped by the shutdown, not failed by the handler: stop() releases the job.
        this.ctx.metrics.attempts.inc({ handler: job.handler.type, outcome: 'released' });
        return;
      }
      this.ctx.metrics.attempts.inc({ handler: job.handler.type, outcome: outcome.kind });
      span?.setAttribute('pie.delivery.outcome', outcome.kind);
      if (job.handler.type !== 'command' && outcome.kind === 'handed-over') {
        noteDispatched(this.ctx, job);
      }
      await this.recordThroughOutage(job, outcome, abort.signal);
    } catch (error) {
      span?.recordException(error instanceof Error ? error : String(error));
      span?.setStatus({ code: SpanStatusCode.ERROR, message: 'dispatch failed' });
      this.log.error({ err: error, job_id: job.job_id }, 'dispatch failed; the lease will expire');
    } finally {
      clearTimeout(deadline);
      clearInterval(renew);
      // A newer attempt of the job may be delivered here meanwhile (this one's lease lapsed).
      if (this.held.get(job.job_id)?.abort === abort) this.held.delete(job.job_id);
    }
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
        await recordDelivery(this.ctx, job, outcome);
        return;
      } catch (error) {
        if (!isDatabaseUnavailable(error) || Date.now() + delayMs > giveUpAt) throw error;
        if (isShutdown(signal)) throw error;
        await sleepUnlessAborted(delayMs, signal);
      }
    }
  }
}

/** Job events after which a job is no longer in flight. */
const FREES_ROOM = new Set<JobEvent['type']>(['finished', 'cancelled', 'retried']);

function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}

/** Abort reasons a delivery may be stopped with, besides its deadline and a shutdown. */
const CANCELLED = { code: 'cancelled', message: 'the job was cancelled' };
const LEASE_LOST = { code: 'lease_lost', message: 'the attempt ended elsewhere' };

function abortCode(signal: AbortSignal): unknown {
  const reason: unknown = signal.reason;
  return signal.aborted && typeof reason === 'object' && reason !== null && 'code' in reason
    ? reason.code
    : undefined;
}

function isShutdown(signal: AbortSignal): boolean {
  return abortCode(signal) === 'shutdown';
}
