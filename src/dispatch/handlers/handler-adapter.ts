import type { DeliveryOutcome, Envelope, JobError } from '../../domain/delivery.js';
import type { Handler, HandlerType } from '../../domain/handlers.js';

/**
 * What every handler kind offers the dispatcher: hand a job over (deliver), and, for the kinds
 * that need it, follow a job the handler accepted with a reference, and stop a job it has. One
 * adapter per kind (http.handler.ts, command.handler.ts, truefoundry/, worker.handler.ts); the
 * registry (handler-registry.ts) holds one of each, keyed by the handler's type.
 */

/** The handler configuration of one kind. */
export type HandlerOf<T extends HandlerType> = Extract<Handler, { type: T }>;

export interface DeliveryContext {
  /** Aborted when the job's deadline passes, the job is cancelled or the process shuts down. */
  signal: AbortSignal;
}

/** What a handler says of a job it accepted with a reference (a TrueFoundry run). */
export type FollowedRun =
  /** Still running, or ended well: its completion arrives (or arrived) through the callback. */
  | { state: 'active' | 'succeeded' }
  /** Ended without success: fail the attempt with `error`. */
  | { state: 'failed'; error: JobError }
  /** Could not tell (unreachable, unreadable answer): log `error` and look again later. */
  | { state: 'unknown'; error: JobError };

/** A job cancelled while its handler had it: what telling that handler needs. */
export interface CancelNotice {
  job_id: string;
  attempt: number;
  /** What the handler gave back on accepting the job (a TrueFoundry run's name), if anything. */
  handler_ref: string | null;
}

/** Whether the handler took the news of a cancel; best effort, so a failure is only counted. */
export type CancelOutcome = { delivered: true } | { delivered: false; error: JobError };

export interface HandlerAdapter<T extends HandlerType> {
  readonly type: T;
  /** Hands the job over; never throws for the handler's own failures, it reports an outcome. */
  deliver(
    envelope: Envelope,
    handler: HandlerOf<T>,
    ctx: DeliveryContext,
  ): Promise<DeliveryOutcome>;
  /** Optional: follows a job the handler accepted with a reference (`handed-over.reference`). */
  follow?(handler: HandlerOf<T>, reference: string, signal?: AbortSignal): Promise<FollowedRun>;
  /**
   * Optional: tells the handler that a job it has was cancelled, so that it stops (http and
   * truefoundry). Undefined when there is nothing to tell (no run was started). Commands are
   * stopped by the process delivering them instead, and pull workers by their heartbeats.
   */
  cancel?(
    handler: HandlerOf<T>,
    notice: CancelNotice,
    signal: AbortSignal,
  ): Promise<CancelOutcome | undefined>;
}

/** One adapter for each handler kind. */
export type HandlerAdapters = { readonly [T in HandlerType]: HandlerAdapter<T> };

export interface HandlerRegistry {
  /** The kinds this process claims jobs of: http, truefoundry, and command when enabled. */
  readonly pushTypes: readonly HandlerType[];
  /** Hands the envelope to the adapter of `handler.type`. */
  deliver(envelope: Envelope, handler: Handler, ctx: DeliveryContext): Promise<DeliveryOutcome>;
  /**
   * Follows a run through the adapter of `handler.type`; undefined when that kind has nothing
   * to follow.
   */
  follow(
    handler: Handler,
    reference: string,
    signal?: AbortSignal,
  ): Promise<FollowedRun | undefined>;
  /** The kinds whose adapter is told of cancels (`cancel`). */
  readonly cancelTypes: readonly HandlerType[];
  /**
   * Tells the handler of a cancel through the adapter of `handler.type`; undefined when that
   * kind is not told, or there was nothing to tell.
   */
  cancel(
    handler: Handler,
    notice: CancelNotice,
    signal: AbortSignal,
  ): Promise<CancelOutcome | undefined>;
  /** Closes what the adapters hold (the address guard's connections). */
  close(): Promise<void>;
}
