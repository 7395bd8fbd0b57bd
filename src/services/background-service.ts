/**
 * Work a PIE process does on its own, beside answering requests: claiming and delivering
 * jobs, reaping leases and deadlines, following TrueFoundry runs, vacuuming. Each starts and
 * stops by itself; `pie serve` runs them as one list (see `ServiceList`).
 */
export interface BackgroundService {
  /** Says what the service does, in logs. */
  readonly name: string;
  start(): void;
  /**
   * Stops starting work and resolves once the work under way has settled. `graceMs` is how
   * long work handed to others (deliveries) may take to finish before it is aborted.
   */
  stop(graceMs: number): Promise<void>;
}

/**
 * The process's background services, started together and stopped together; `closers`
 * release what the services share (connections) once every one of them has stopped.
 */
export class ServiceList {
  constructor(
    readonly services: readonly BackgroundService[],
    private readonly closers: readonly (() => Promise<void>)[] = [],
  ) {}

  start(): void {
    for (const service of this.services) service.start();
  }

  /** Stops every service at once, so that no loop waits for another to stop. */
  async stop(graceMs = 0): Promise<void> {
    await Promise.all(this.services.map((service) => service.stop(graceMs)));
    for (const close of this.closers) await close();
  }
}

/**
 * Runs a task every `intervalMs` (never two turns at once), tracking the turn under way so
 * that `stop()` can wait for it. `skip` lets the owner pass turns (a database outage).
 */
export class Periodic {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly intervalMs: number,
    private readonly task: () => Promise<void>,
    private readonly skip: () => boolean = () => false,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.runNow(), this.intervalMs);
    this.timer.unref();
  }

  /** Runs a turn now, unless one is under way, the task is stopped, or `skip` says so. */
  runNow(): void {
    if (this.stopped || this.running !== undefined || this.skip()) return;
    this.running = this.task().finally(() => (this.running = undefined));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
  }
}
