import { EventEmitter } from 'node:events';
import type { Database } from '../db/database.js';
import type { JobEventBus } from './job-events.js';
import { NOTIFY_SQL } from './job-wakeups.js';

/**
 * Tells whoever holds a job's attempt that the job was cancelled, so that it stops the work:
 * the claim pump delivering it, in this process or any other sharing the database. It follows
 * the job events (`follow`): a job cancelled while a dispatcher held it under a lease is
 * announced once committed, by job id. Listeners here hear it at once; other processes on a
 * PostgreSQL server hear it through a coalesced NOTIFY per tick on `pie_job_stops`, like the
 * wake-ups (job-wakeups.ts). A listener told `undefined` (an empty payload, or a reconnect after
 * which notifications may have been lost) checks every job it holds.
 */
export class JobStops {
  private readonly emitter = new EventEmitter();
  private unlisten: (() => Promise<void>) | undefined;
  private pending: string[] = [];
  private flushing: Promise<void> | undefined;
  private sending: Promise<void> | undefined;

  private constructor(private readonly db: Database | undefined) {
    this.emitter.setMaxListeners(0);
  }

  /** Listens on the database; on PGlite (one process) announcements stay in-process. */
  static async listen(db: Database): Promise<JobStops> {
    if (db.backend === 'pglite') return new JobStops(undefined);
    const stops = new JobStops(db);
    stops.unlisten = await db.listen(STOPS_CHANNEL, (payload) => stops.notify(payload));
    return stops;
  }

  /**
   * Announces the jobs that were cancelled while a dispatcher held them. Pull workers' jobs are
   * left out: a worker hears of the cancel from its next heartbeat, and no PIE process holds them.
   */
  follow(bus: JobEventBus): () => void {
    return bus.subscribe((events) => {
      const jobIds: string[] = [];
      for (const event of events) {
        const attempt = event.type === 'cancelled' ? event.attempt : undefined;
        if (attempt?.leased === true && attempt.handler_type !== 'worker') {
          jobIds.push(attempt.job_id);
        }
      }
      this.announce(jobIds);
    });
  }

  /** Tells holders here and in other processes to stop these jobs. */
  announce(jobIds: readonly string[]): void {
    if (jobIds.length === 0) return;
    this.emitter.emit('stop', [...jobIds]);
    if (this.db === undefined) return;
    this.pending.push(...jobIds);
    this.flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() =>
      this.flush(),
    );
  }

  private async flush(): Promise<void> {
    const payloads = stopPayloads(this.pending);
    this.pending = [];
    this.flushing = undefined;
    // With the database away nobody else could cancel either; a holder's lease renewal, which
    // fails once the job is final, is the backstop.
    const db = this.db;
    if (db === undefined) return;
    this.sending = Promise.all(
      payloads.map((payload) => db.query(NOTIFY_SQL, [STOPS_CHANNEL, payload])),
    )
      .then(() => undefined)
      .catch(() => undefined);
    await this.sending;
  }

  /** `payload` lists job ids; empty or undefined means "check every job you hold". */
  notify(payload: string | undefined): void {
    const jobIds = payload === undefined || payload === '' ? undefined : payload.split(',');
    this.emitter.emit('stop', jobIds);
  }

  /** Calls `listener` on every stop; returns a function that stops it. */
  onStop(listener: (jobIds: string[] | undefined) => void): () => void {
    this.emitter.on('stop', listener);
    return () => this.emitter.off('stop', listener);
  }

  /** Sends what is still announced, then stops listening. */
  async close(): Promise<void> {
    await this.flushing;
    await this.sending;
    this.emitter.removeAllListeners();
    await this.unlisten?.();
  }
}

const STOPS_CHANNEL = 'pie_job_stops';
/** A NOTIFY payload must stay under 8000 bytes; job ids are ASCII. */
const MAX_PAYLOAD_BYTES = 7900;
/** Past this many payloads in one tick, one empty payload (check everything) says it cheaper. */
const MAX_PAYLOADS = 20;

/** Comma-separated job ids, in payloads under the size limit; [''] when they would be too many. */
export function stopPayloads(jobIds: readonly string[]): string[] {
  const payloads: string[] = [];
  let current = '';
  for (const jobId of new Set(jobIds)) {
    // An id that could never fit, or one with a comma, cannot be told apart: check everything.
    if (jobId.length > MAX_PAYLOAD_BYTES || jobId.includes(',') || jobId === '') return [''];
    if (current !== '' && current.length + 1 + jobId.length > MAX_PAYLOAD_BYTES) {
      payloads.push(current);
      current = '';
    }
    current = current === '' ? jobId : `${current},${jobId}`;
  }
  if (current !== '') payloads.push(current);
  return payloads.length > MAX_PAYLOADS ? [''] : payloads;
}
