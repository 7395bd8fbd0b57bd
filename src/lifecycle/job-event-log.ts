import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Database } from '../db/database.js';
import {
  readDomainEventsAfter,
  readEventsAfter,
  readLogBounds,
  sequenceJobEvents,
  type JobEventRecord,
} from '../repositories/job-events.repository.js';
import type { JobEventBus } from './job-events.js';

/** Where a stream writes: the HTTP side implements it over a socket. */
export interface JobEventSink {
  /** Sends events in order; false when the consumer fell too far behind and was cut off. */
  send(events: readonly JobEventRecord[]): boolean;
  /** Tells the consumer it missed events it cannot get back, and that it resumes at `position`. */
  reset(position: number, reason: string): boolean;
  /** Resolves true once the consumer has taken what was sent, false if it was cut off. */
  drained(): Promise<boolean>;
  /** Ends the stream (the process is shutting down). */
  end(): void;
  /** Cuts the consumer off (it would not keep up). */
  cutOff(): void;
}

export interface JobEventLogOptions {
  /** How often each process numbers events nobody announced and reads what others numbered. */
  pollMs: number;
}

export const JOB_EVENT_LOG_DEFAULTS: JobEventLogOptions = { pollMs: 500 };

const CHANNEL = 'pie_job_events';
const SEQUENCE_BATCH = 1000;
/** How long a sequencer turn waits, at least, for more job changes to number with the first. */
const SEQUENCE_DELAY_MS = 10;
/**
 * Under load, a turn also waits this many times as long as the previous turn took, so that
 * numbering takes at most about a tenth of the time. A turn's cost is mostly fixed (on PGlite
 * about 0.8 ms, plus 17 µs an event), and on PGlite it runs on the thread that serves HTTP:
 * turns every 10 ms cost embedded run-job a fifth of its throughput (BENCHMARKS.md).
 */
const SEQUENCE_SPACING = 9;
/** However long turns take, one starts at most this long after the first ask. */
const SEQUENCE_MAX_DELAY_MS = 100;
const READ_BATCH = 1000;
const CATCH_UP_PAGE = 500;

interface Follower {
  sink: JobEventSink;
  /** The last position sent (or deliberately skipped). */
  cursor: number;
  /** Catching up from the database: the reader passes it by until it is live. */
  catchingUp: boolean;
}

/**
 * The process's side of the job event log (migration 000014). It numbers committed events
 * (the sequencer: after this process's job changes, on a slow poll for the rest), and it is the
 * one reader of the log in this process: it reads new positions once per wake-up and fans
 * them out to the streams following each domain, so a thousand open streams cost one query.
 * Other processes hear of new positions through one `NOTIFY pie_job_events` per sequencer turn;
 * on PGlite (one process) everything stays here.
 */
export class JobEventLog {
  private readonly followers = new Map<string, Set<Follower>>();
  private followerCount = 0;
  /** The last position read and fanned out; -1 while nobody follows (nothing is read then). */
  private head = -1;
  private reading: Promise<void> | undefined;
  private readAgain = false;
  private sequencing: Promise<void> | undefined;
  private sequenceAgain = false;
  private lastSequencedHead = -1;
  /** How long the last sequencer turn took, which spaces the next (SEQUENCE_SPACING). */
  private lastTurnMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private unlisten: (() => Promise<void>) | undefined;
  /** Aborted by close(): it also cancels a sequencer turn still waiting to start. */
  private readonly closing = new AbortController();

  private constructor(
    private readonly db: Database,
    private readonly options: JobEventLogOptions,
    private readonly onError: (error: unknown) => void,
  ) {}

  private get isClosed(): boolean {
    return this.closing.signal.aborted;
  }

  static async open(
    db: Database,
    options: Partial<JobEventLogOptions> = {},
    onError: (error: unknown) => void = () => undefined,
  ): Promise<JobEventLog> {
    const log = new JobEventLog(db, { ...JOB_EVENT_LOG_DEFAULTS, ...options }, onError);
    if (db.backend === 'postgres') {
      // A notification missed across a reconnect (payload undefined) is caught up the same way.
      log.unlisten = await db.listen(CHANNEL, () => log.readSoon());
    }
    log.timer = setInterval(() => {
      log.sequenceSoon();
      log.readSoon();
    }, log.options.pollMs);
    log.timer.unref();
    return log;
  }

  /**
   * Numbers this process's changes as soon as they are committed, for the streams that follow
   * the log. On the embedded database every stream is in this process, so while none is open
   * the numbering waits for the poll (every `pollMs`), and a stream that opens asks for a turn.
   * A turn there is a statement on the one thread that serves HTTP (2.5 ms on the CI machine),
   * and turns after each change came 24 times a second under the tenant-fairness test's load,
   * half the time its run-job inserts took, for streams nobody had opened. On PostgreSQL other
   * processes' streams may be waiting for the turn, so it is taken whoever follows.
   */
  follow(bus: JobEventBus): () => void {
    return bus.subscribe(() => {
      if (this.db.backend === 'pglite' && this.followerCount === 0) return;
      this.sequenceSoon();
    });
  }

  /** How many streams are open in this process. */
  get open(): number {
    return this.followerCount;
  }

  /** How many of them have caught up and follow the log live. */
  get live(): number {
    let live = 0;
    for (const set of this.followers.values()) {
      for (const follower of set) if (!follower.catchingUp) live += 1;
    }
    return live;
  }

  /**
   * Streams a domain's events to `sink`: after `lastEventId` when given (a `reset` first if
   * events after it were deleted, or it is not a position this log gave), else from now.
   * Resolves once the stream is live, with a function that stops it.
   */
  async stream(
    clientId: string,
    domainId: string,
    lastEventId: number | undefined,
    sink: JobEventSink,
  ): Promise<() => void> {
    if (this.isClosed) {
      // Closing began (a consumer reconnecting as its stream was ended, say): a stream
      // registered now would never be ended, and the server's close would wait for it.
      sink.end();
      return () => undefined;
    }
    const key = domainKey(clientId, domainId);
    const follower: Follower = { sink, cursor: -1, catchingUp: true };
    let set = this.followers.get(key);
    if (set === undefined) this.followers.set(key, (set = new Set()));
    set.add(follower);
    this.followerCount += 1;
    const stop = () => {
      if (set.delete(follower)) this.followerCount -= 1;
      if (set.size === 0 && this.followers.get(key) === set) this.followers.delete(key);
    };
    // On the embedded database, changes committed while nobody followed wait unnumbered for
    // the poll (see follow): a turn now numbers them, after the head this stream starts at, so
    // a stream from now may begin with changes up to a poll older than its start. Numbering
    // them before taking the head would instead skip the changes made between the answer's
    // headers and that turn, which a client that starts work once the stream is open expects.
    this.sequenceSoon();
    try {
      // Registered first (the reader keeps reading while someone follows), then the reader
      // given a place in the log: from here on, `this.head` is a position it has read and handed
      // to every live follower.
      await this.readNow();
      const bounds = await readLogBounds(this.db);
      if (lastEventId === undefined) {
        follower.cursor = bounds.head;
      } else if (lastEventId < bounds.prunedThrough || lastEventId > bounds.head) {
        follower.cursor = bounds.head;
        const reason =
          lastEventId > bounds.head
            ? 'the Last-Event-ID is not a position of this event log'
            : 'events after the Last-Event-ID were deleted (older than the retention window)';
        if (!sink.reset(bounds.head, reason)) return stop;
      } else {
        follower.cursor = lastEventId;
      }
      // Catches up from the database, page by page, until it stands where the reader stands.
      // Nothing the reader hands out meanwhile is kept for it (a burst of any size would have
      // to wait in memory): what the reader read is numbered and committed, so a read started
      // after it sees it, and a short page has sent every event of the domain up to there.
      for (;;) {
        const readerHead = this.head;
        const page = await readDomainEventsAfter(
          this.db,
          clientId,
          domainId,
          follower.cursor,
          CATCH_UP_PAGE,
        );
        if (page.length > 0) {
          if (!sink.send(page)) return stop;
          follower.cursor = page[page.length - 1]!.position;
        }
        if (page.length === CATCH_UP_PAGE) {
          if (!(await sink.drained())) return stop;
          continue;
        }
        // No await from here to going live: the reader cannot move in between.
        follower.cursor = Math.max(follower.cursor, readerHead);
        if (this.head <= follower.cursor) {
          follower.catchingUp = false;
          return stop;
        }
      }
    } catch (error) {
      stop();
      throw error;
    }
  }

  private deliver(events: readonly JobEventRecord[]): void {
    const byDomain = new Map<string, JobEventRecord[]>();
    for (const event of events) {
      const key = domainKey(event.client_id, event.domain_id);
      if (!this.followers.has(key)) continue;
      let list = byDomain.get(key);
      if (list === undefined) byDomain.set(key, (list = []));
      list.push(event);
    }
    for (const [key, list] of byDomain) {
      for (const follower of [...(this.followers.get(key) ?? [])]) {
        if (follower.catchingUp) continue;
        const fresh = list.filter((event) => event.position > follower.cursor);
        if (fresh.length === 0) continue;
        follower.cursor = fresh[fresh.length - 1]!.position;
        follower.sink.send(fresh);
      }
    }
  }

  /** Reads what was numbered since the last read (coalesced: one read at a time). */
  readSoon(): void {
    if (this.isClosed) return;
    if (this.followerCount === 0) {
      this.head = -1;
      return;
    }
    if (this.reading !== undefined) {
      this.readAgain = true;
      return;
    }
    this.reading = this.read()
      .catch(this.onError)
      .finally(() => {
        this.reading = undefined;
        if (this.readAgain) {
          this.readAgain = false;
          this.readSoon();
        }
      });
  }

  /** Resolves once a read that started after this call has finished. */
  private async readNow(): Promise<void> {
    while (this.reading !== undefined) await this.reading;
    this.readSoon();
    // readSoon set it (the narrowing above does not know).
    await (this.reading as Promise<void> | undefined);
  }

  private async read(): Promise<void> {
    if (this.head < 0) {
      // Nobody followed until now: start at the head; followers catch up on their own.
      this.head = (await readLogBounds(this.db)).head;
      return;
    }
    for (;;) {
      const events = await readEventsAfter(this.db, this.head, READ_BATCH);
      if (events.length === 0) return;
      this.head = events[events.length - 1]!.position;
      this.deliver(events);
      if (this.followerCount === 0) {
        // Nobody to read for: the next follower starts the reader at the head, rather than
        // have it read through a backlog nobody is waiting for.
        this.head = -1;
        return;
      }
      if (events.length < READ_BATCH) return;
      // PGlite answers without passing through the event loop's I/O phase: without this turn,
      // a burst read batch after batch would pile up unsent in every stream's socket buffer and
      // cut off consumers that keep up.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /**
   * Numbers committed events, coalesced: a turn starts SEQUENCE_DELAY_MS after the first ask
   * (or SEQUENCE_SPACING times the last turn's duration, if longer, up to
   * SEQUENCE_MAX_DELAY_MS), so the job changes of that moment share one turn instead of each
   * paying a statement on the hot paths (one-at-a-time run-jobs asked for a turn each); one
   * turn at a time, and another if asked meanwhile.
   */
  sequenceSoon(): void {
    if (this.isClosed) return;
    if (this.sequencing !== undefined) {
      this.sequenceAgain = true;
      return;
    }
    const delayMs = Math.min(
      SEQUENCE_MAX_DELAY_MS,
      Math.max(SEQUENCE_DELAY_MS, SEQUENCE_SPACING * this.lastTurnMs),
    );
    this.sequencing = sleep(delayMs, undefined, { signal: this.closing.signal })
      .then(
        () => (this.isClosed ? undefined : this.sequence()),
        () => undefined, // the log closed during the wait: the turn is not taken
      )
      .catch(this.onError)
      .finally(() => {
        this.sequencing = undefined;
        if (this.sequenceAgain) {
          this.sequenceAgain = false;
          this.sequenceSoon();
        }
      });
  }

  private async sequence(): Promise<void> {
    const started = performance.now();
    try {
      await this.numberCommitted();
    } finally {
      this.lastTurnMs = performance.now() - started;
    }
  }

  /** Numbers committed events, a batch at a time, until none is left. */
  private async numberCommitted(): Promise<void> {
    for (;;) {
      // Other processes hear of a turn that numbered rows; on PGlite there are none.
      const notify =
        this.db.backend === 'postgres'
          ? { channel: CHANNEL, after: this.lastSequencedHead }
          : undefined;
      const head = await sequenceJobEvents(this.db, SEQUENCE_BATCH, notify);
      const given = head - this.lastSequencedHead;
      if (given === 0) return;
      this.lastSequencedHead = head;
      this.readSoon();
      if (given < SEQUENCE_BATCH) return;
    }
  }

  /** Ends every stream, stops the poll and the listener; call before closing the database. */
  async close(): Promise<void> {
    this.closing.abort();
    clearInterval(this.timer);
    for (const set of this.followers.values()) for (const follower of set) follower.sink.end();
    await this.sequencing;
    await this.reading;
    await this.unlisten?.();
  }
}

function domainKey(clientId: string, domainId: string): string {
  return `${clientId}\u0000${domainId}`;
}
