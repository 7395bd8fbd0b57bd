import type { Queryable } from '../db/database.js';
import { countOpenJobsByClient } from '../repositories/open-jobs.repository.js';

/** Holds one admitted request's place until it says how many jobs it started. */
export interface Admission {
  settle(started: number): void;
}

const UNLIMITED: Admission = { settle: () => undefined };

/**
 * The open-jobs quota (PIE_QUOTA_OPEN_JOBS): a client with that many queued, dispatched or
 * running jobs gets 429 on the routes that start jobs. Running a job stays one statement: a
 * client's open jobs are taken from one grouped count of all clients, plus the jobs this
 * process started since that count was sent, plus the requests admitted and still in flight.
 *
 * The count reads every open job, so it runs only when it matters: at most once a second, and
 * only for a request whose client is at half its quota or more by the last count, or when the
 * last count is 10 s old (to see other processes' jobs). A request never waits for it, except
 * the first and those of a client the last count put at its quota, whose answer the new count
 * may change.
 *
 * Approximate by design, and documented so: jobs that finish or are cancelled, and jobs other
 * processes start, show up at the next count; a job committed while a count runs may be
 * counted twice, or not at all, until the next one; and services init is refused only once the
 * quota is reached, so one init may pass it by the domain's services.
 */
export class OpenJobQuota {
  private base = new Map<string, number>();
  // Jobs started by requests admitted before the running count was sent: they may or may not
  // be in it, so they count until it answers and are then left to it.
  private earlier = new Map<string, number>();
  // Jobs started by requests admitted after the latest count was sent.
  private recent = new Map<string, number>();
  private readonly inFlight = new Map<string, number>();
  // Bumped as each count is sent; a request remembers the generation it was admitted in.
  private generation = 0;
  private countedAt: number | undefined;
  private counting: Promise<void> | undefined;

  private readonly minAgeMs: number;
  private readonly maxAgeMs: number;
  private readonly now: () => number;

  constructor(
    private readonly db: Queryable,
    /** 0 turns the quota off. */
    readonly limit: number,
    options: { minAgeMs?: number; maxAgeMs?: number; now?: () => number } = {},
  ) {
    this.minAgeMs = options.minAgeMs ?? 1000;
    this.maxAgeMs = options.maxAgeMs ?? 10_000;
    this.now = options.now ?? (() => performance.now());
  }

  /** Reserves a place for a request that starts jobs, or answers undefined at the quota. */
  async admit(clientId: string): Promise<Admission | undefined> {
    if (this.limit <= 0) return UNLIMITED;
    const age = this.countedAt === undefined ? Infinity : this.now() - this.countedAt;
    const open = this.open(clientId);
    if (age >= this.maxAgeMs || (age >= this.minAgeMs && open * 2 >= this.limit)) {
      const counting = this.count();
      if (this.countedAt === undefined || open >= this.limit) await counting;
    }
    if (this.open(clientId) >= this.limit) return undefined;
    add(this.inFlight, clientId, 1);
    const generation = this.generation;
    let settled = false;
    return {
      settle: (started) => {
        if (settled) return;
        settled = true;
        add(this.inFlight, clientId, -1);
        if (generation === this.generation) add(this.recent, clientId, started);
        else if (generation === this.generation - 1 && this.counting !== undefined) {
          add(this.earlier, clientId, started);
        }
      },
    };
  }

  /** The client's open jobs as this process knows them. */
  open(clientId: string): number {
    return (
      (this.base.get(clientId) ?? 0) +
      (this.earlier.get(clientId) ?? 0) +
      (this.recent.get(clientId) ?? 0) +
      (this.inFlight.get(clientId) ?? 0)
    );
  }

  private count(): Promise<void> {
    this.counting ??= (async () => {
      this.earlier = this.recent;
      this.recent = new Map();
      this.generation += 1;
      try {
        this.base = await countOpenJobsByClient(this.db);
      } catch {
        // Keep the last counts: with the database away, the request fails on its own insert.
        for (const [clientId, started] of this.earlier) add(this.recent, clientId, started);
      } finally {
        this.earlier = new Map();
        this.countedAt = this.now();
        this.counting = undefined;
      }
    })();
    return this.counting;
  }
}
function add(counts: Map<string, number>, key: string, delta: number): void {
  const value = (counts.get(key) ?? 0) + delta;
  if (value === 0) counts.delete(key);
  else counts.set(key, value);
}
