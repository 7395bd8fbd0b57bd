import type { Database } from './database.js';

interface Waiting<Item, Result> {
  item: Item;
  resolve: (result: Result) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit for the embedded database. PGlite is one connection, so concurrent requests
 * wait for each other's statements anyway; gathering the writes that arrive while one
 * statement runs into the next statement pays PGlite's per-statement and per-commit cost once
 * per batch instead of once per write. PGlite runs a statement on this thread, so requests
 * that arrive meanwhile are only read after it: a batch starts at `setImmediate`, once the
 * event loop has read every request that is ready, and a lone request waits one loop turn.
 *
 * `writeBatch` writes its items in one statement and answers one result per item, in order.
 * When it fails, the batch is written again one item at a time, so that one bad item fails
 * alone.
 */
export class GroupCommit<Item, Result> {
  private waiting: Waiting<Item, Result>[] = [];
  private draining = false;

  constructor(
    readonly db: Database,
    private readonly writeBatch: (db: Database, items: Item[]) => Promise<Result[]>,
    private readonly maxBatch = 200,
  ) {}

  /** Resolves with the item's result once the batch it joined has committed. */
  write(item: Item): Promise<Result> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (!this.draining) {
        this.draining = true;
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    while (this.waiting.length > 0) {
      const batch = this.waiting.splice(0, this.maxBatch);
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
    this.draining = false;
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
