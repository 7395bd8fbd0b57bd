import type { HandlerType } from '../domain/handlers.js';

/**
 * What happened to jobs, told after it was committed. Metrics and wake-ups subscribe to these
 * instead of being called at each place a job changes; whatever else must follow a job's life
 * (live event streams, traces) subscribes here too.
 */
export type JobEvent =
  /** Jobs were created, all of one type and one wake-up key (services init makes many). */
  | {
      type: 'queued';
      jobType: string;
      count: number;
      wake: string;
      /** Started again from failed or cancelled jobs (redrive). */
      redrive?: boolean;
    }
  /** A handler has the job: a pull worker claimed it, a command started, or a push handler accepted it. */
  | { type: 'dispatched'; handler: HandlerType; attempt: number; createdAt: string }
  /** The job reached success or failure. */
  | { type: 'finished'; jobType: string; status: 'success' | 'failure' }
  /** The job went back to the queue for another attempt; `dueNow` when it may be claimed at once. */
  | {
      type: 'retried';
      jobType: string;
      reason: 'retry' | 'lease_expired' | 'released';
      dueNow: boolean;
      wake: readonly string[];
    }
  /**
   * The job was cancelled before it finished. `attempt` is set when a handler had it
   * (dispatched or running), so that the handler can be told to stop.
   */
  | { type: 'cancelled'; jobType: string; attempt?: CancelledAttempt };

/** The attempt a cancel cut short, as it was just before: what stopping its handler needs. */
export interface CancelledAttempt {
  job_id: string;
  client_id: string;
  model_id: string;
  model_version: string;
  handler_type: HandlerType;
  /** What the handler gave back on accepting the job (a TrueFoundry run's name), if anything. */
  handler_ref: string | null;
  attempt: number;
  /** Whether someone held the attempt under a lease (a dispatcher delivering, a pull worker). */
  leased: boolean;
}

export type JobEventListener = (events: readonly JobEvent[]) => void;

/** Collects the events of a piece of work, to be published once that work has committed. */
export type EmitJobEvent = (event: JobEvent) => void;

/**
 * The process's bus of job events. Listeners run synchronously, in the order they subscribed,
 * with each batch of events one piece of work produced; a listener that throws is reported and
 * does not stop the others.
 */
export class JobEventBus {
  private readonly listeners: JobEventListener[] = [];

  constructor(private readonly onListenerError: (error: unknown) => void = () => undefined) {}

  /** Calls `listener` with every batch published from now on; returns a function that stops it. */
  subscribe(listener: JobEventListener): () => void {
    this.listeners.push(listener);
    return () => {
      const index = this.listeners.indexOf(listener);
      if (index >= 0) this.listeners.splice(index, 1);
    };
  }

  publish(events: readonly JobEvent[]): void {
    if (events.length === 0) return;
    for (const listener of this.listeners) {
      try {
        listener(events);
      } catch (error) {
        this.onListenerError(error);
      }
    }
  }

  /**
   * Runs `work`, giving it a function to emit events with, and publishes them once `work` has
   * resolved: pass work that resolves after its commit (a transaction, or a single statement),
   * so that a rolled-back change is never announced.
   */
  async afterCommit<T>(work: (emit: EmitJobEvent) => Promise<T>): Promise<T> {
    const events: JobEvent[] = [];
    const result = await work((event) => events.push(event));
    this.publish(events);
    return result;
  }
}
