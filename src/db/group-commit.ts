import type { Database } from './database.js';

interface Waiting<Item, Result> {
  item: Item;
  resolve: (result: Result) => void;
  reject: (error: unknown) => void;
}

export interface GroupCommitOptions {
  /** Items one statement writes at most. */
  maxBatch?: number;
  /** Statements in flight at once: 1 on PGlite (one connection), a few on PostgreSQL. */
  concurrency?: number;
}

/**
 * Group commit: the writes that arrive while a statement runs go into the next statement, so
 * the per-statement and per-commit cost (a WAL flush on PostgreSQL, the whole statement on
 * PGlite's one connection) is paid once per batch instead of once per write. A batch starts at
 * `setImmediate`, once the event loop has read every request that is ready, so a lone request
 * waits one loop turn. Up to `concurrency` statements run at once; while all are busy, new
 * writes queue and join whichever batch starts next, so batches grow with the load.
 *
 * `writeBatch` writes its items in one statement and answers one result per item, in order.
 * When it fails, the batch is written again one item at a time, so that one bad item fails
 * alone.
 */
export class GroupCommit<Item, Result> {
  private waiting: Waiting<Item, Result>[] = [];
  private running = 0;
  private scheduled = false;
  private readonly maxBatch: number;
  private readonly concurrency: number;

  constructor(
    readonly db: Database,
    private readonly writeBatch: (db: Database, items: Item[]) => Promise<Result[]>,
    options: GroupCommitOptions = {},
  ) {
    this.maxBatch = options.maxBatch ?? 200;
    this.concurrency = options.concurrency ?? 1;
  }

  /** Resolves with the item's result once the batch it joined has committed. */
  write(item: Item): Promise<Result> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.running >= this.concurrency) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    if (this.running >= this.concurrency || this.waiting.length === 0) return;
    this.running += 1;
    try {
      while (this.waiting.length > 0) {
        const batch = this.waiting.splice(0, this.maxBatch);
        // What arrives during this statement may start another, up to the concurrency.
        if (this.waiting.length > 0) this.schedule();
        try {
          const results = await this.writeBatch(
            this.db,
            batch.map((waiting) => waiting.item),
          );
          batch.forEach((waiting, i) => waiting.resolve(results[i] as Result));
        } catch (error) {
          if (batch.length === 1) batch[0]!.reject(error);
          else await this.oneByOne(batch);
        }
        // Let the requests that arrived during the statement join the next batch.
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      this.running -= 1;
    }
  }

  private async oneByOne(batch: Waiting<Item, Result>[]): Promise<void> {
    for (const waiting of batch) {
      try {
        const [result] = await this.writeBatch(this.db, [waiting.item]);
        waiting.resolve(result as Result);
      } catch (error) {
        waiting.reject(error);
      }
    }
  }
}
