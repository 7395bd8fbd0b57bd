import { EventEmitter } from 'node:events';
import type { Database } from '../db/database.js';
import type { JobEventBus } from './job-events.js';

/**
 * Wakes the dispatcher and workers waiting in a long-poll when jobs become claimable. It
 * follows the job events (`follow`): jobs queued, or retried and due at once, are announced
 * once committed, by key: the model version of pull jobs, `*` for push jobs. Waiters in this
 * process wake at once; other processes sharing a PostgreSQL server hear it through one
 * coalesced NOTIFY per tick on `pie_jobs`. (NOTIFY
 * inside the inserting transaction would serialise every commit: see migration 000005.)
 *
 * It also carries the process's drain: once `drain()` is called (a shutdown began), every
 * waiter returns at once and no new wait starts, so long polls answer instead of holding the
 * shutdown up.
 */
export class JobWakeups {
  private readonly emitter = new EventEmitter();
  private unlisten: (() => Promise<void>) | undefined;
  private pending = new Set<string>();
  /** The flush scheduled for this tick, and the NOTIFY being sent: close() waits for both. */
  private flushing: Promise<void> | undefined;
  private sending: Promise<void> | undefined;
  private drained = false;
  /** Wake-ups heard per key, and for every key at once: see `mark`. */
  private readonly wakesByKey = new Map<string, number>();
  private wakesOfAll = 0;

  private constructor(private readonly db: Database | undefined) {
    this.emitter.setMaxListeners(0);
  }

  /** Listens on the database; on PGlite (one process) announcements stay in-process. */
  static async listen(db: Database): Promise<JobWakeups> {
    if (db.backend === 'pglite') return new JobWakeups(undefined);
    const wakeups = new JobWakeups(db);
    wakeups.unlisten = await db.listen('pie_jobs', (payload) => wakeups.notify(payload));
    return wakeups;
  }

  /** Announces the jobs that job events say became claimable. */
  follow(bus: JobEventBus): () => void {
    return bus.subscribe((events) => {
      const keys: string[] = [];
      for (const event of events) {
        if (event.type === 'queued') keys.push(event.wake);
        else if (event.type === 'retried' && event.dueNow) keys.push(...event.wake);
      }
      this.announce([...new Set(keys)]);
    });
  }

  /** Tells waiters here and in other processes that jobs under these keys were committed. */
  announce(keys: readonly string[]): void {
    if (keys.length === 0) return;
    this.wake([...keys]);
    if (this.db === undefined) return;
    for (const key of keys) this.pending.add(key);
    // One NOTIFY per tick: what the commits of this turn of the event loop announce goes out
    // together, so under load a process sends a NOTIFY per tick, not one per commit.
    this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() =>
      this.flush(),
    );
  }

  private async flush(): Promise<void> {
    const keys = [...this.pending];
    this.pending = new Set();
    this.flushing = undefined;
    if (keys.length === 0) return;
    // Too many keys for one payload: an empty one wakes everyone.
    const payload = keys.length <= 20 ? keys.join(',') : '';
    // With the database away nobody else can claim either; the slow polls catch up after.
    this.sending = this.db
      ?.query(NOTIFY_SQL, ['pie_jobs', payload])
      .then(() => undefined)
      .catch(() => undefined);
    await this.sending;
  }

  /** The process is shutting down: wake every waiter, and let no new wait start. */
  drain(): void {
    this.drained = true;
    this.emitter.emit('drain');
  }

  /** Whether `drain()` was called: readiness is false and claims answer at once. */
  get draining(): boolean {
    return this.drained;
  }

  /** `payload` lists `model/version` keys; empty or undefined wakes everyone. */
  notify(payload: string | undefined): void {
    const keys = payload === undefined || payload === '' ? undefined : payload.split(',');
    this.wake(keys);
  }

  /** Calls `listener` on every wake-up; returns a function that stops it. */
  onWake(listener: (keys: string[] | undefined) => void): () => void {
    this.emitter.on('wake', listener);
    return () => this.emitter.off('wake', listener);
  }

  private wake(keys: string[] | undefined): void {
    if (keys === undefined) this.wakesOfAll++;
    else for (const key of keys) this.wakesByKey.set(key, (this.wakesByKey.get(key) ?? 0) + 1);
    this.emitter.emit('wake', keys);
  }

  /**
   * How many wake-ups concerning `key` this process has heard. A claimer takes the mark before
   * it looks for jobs and passes it to `wait`: jobs committed while its look was under way
   * (after its snapshot) wake it at once instead of after the slow poll.
   */
  mark(key: string): number {
    return (this.wakesByKey.get(key) ?? 0) + this.wakesOfAll;
  }

  /**
   * Resolves on a wake-up concerning `key`, after `timeoutMs`, or when `signal` aborts; at
   * once if one came after `since` (a `mark`).
   */
  wait(key: string, timeoutMs: number, signal?: AbortSignal, since?: number): Promise<void> {
    if (this.drained) return Promise.resolve();
    if (since !== undefined && this.mark(key) !== since) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        stop();
        this.emitter.off('drain', done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      const stop = this.onWake((keys) => {
        if (keys === undefined || keys.includes(key)) done();
      });
      this.emitter.once('drain', done);
      signal?.addEventListener('abort', done);
    });
  }

  /** Sends what is still announced, then stops listening. */
  async close(): Promise<void> {
    this.drain();
    await this.flushing;
    await this.sending;
    this.emitter.removeAllListeners();
    await this.unlisten?.();
  }
}

// A NOTIFY is a transaction, and its commit would wait for the WAL to reach the disk like a
// job insert's: one more fsync per announcement, which every writer on the server then queued
// behind. A notification is not durable anyway (listeners not connected at commit never get
// it), so its commit need not be either.
export const NOTIFY_SQL = "select set_config('synchronous_commit', 'off', true), pg_notify($1, $2)";

/** The key of push work (http, command, truefoundry handlers) in a wake-up. */
export const PUSH_KEY = '*';

export function versionKey(modelId: string, modelVersion: string): string {
  return `${modelId}/${modelVersion}`;
}

/** The wake-up key of a job: its model version for pull workers, else push work. */
export function wakeKey(job: { model_id: string; model_version: string; handler_type: string }) {
  return job.handler_type === 'worker' ? versionKey(job.model_id, job.model_version) : PUSH_KEY;
}
