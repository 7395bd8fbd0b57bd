import { EventEmitter } from 'node:events';
import type { Database } from '../db/database.js';

/**
 * Turns the database's `pie_jobs` notifications (sent when jobs become claimable: the model
 * versions with new pull jobs, and `*` for push jobs) into in-process wake-ups for the
 * dispatcher and for workers waiting in a long-poll. One LISTEN per process, however many
 * waiters.
 */
export class JobWakeups {
  private readonly emitter = new EventEmitter();
  private unlisten: (() => Promise<void>) | undefined;

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  static async listen(db: Database): Promise<JobWakeups> {
    const wakeups = new JobWakeups();
    wakeups.unlisten = await db.listen('pie_jobs', (payload) => wakeups.notify(payload));
    return wakeups;
  }

  /** `payload` lists `model/version` keys; empty or undefined wakes everyone. */
  notify(payload: string | undefined): void {
    const keys = payload === undefined || payload === '' ? undefined : payload.split(',');
    this.emitter.emit('wake', keys);
  }

  /** Calls `listener` on every wake-up; returns a function that stops it. */
  onWake(listener: (keys: string[] | undefined) => void): () => void {
    this.emitter.on('wake', listener);
    return () => this.emitter.off('wake', listener);
  }

  /** Resolves on a wake-up concerning `key`, after `timeoutMs`, or when `signal` aborts. */
  wait(key: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        stop();
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      const stop = this.onWake((keys) => {
        if (keys === undefined || keys.includes(key)) done();
      });
      signal?.addEventListener('abort', done);
    });
  }

  async close(): Promise<void> {
    this.emitter.removeAllListeners();
    await this.unlisten?.();
  }
}

/** The key of push work (http, command, truefoundry handlers) in a wake-up. */
export const PUSH_KEY = '*';

export function versionKey(modelId: string, modelVersion: string): string {
  return `${modelId}/${modelVersion}`;
}
