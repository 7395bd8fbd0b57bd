import type { Database } from '../db/database.js';
import {
  insertJobsIfTargetsCurrent,
  type GuardedJob,
} from '../repositories/job-batch-insert.repository.js';

interface Waiting extends GuardedJob {
  resolve: (jobId: string | undefined) => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit for the embedded database. PGlite is one connection, so concurrent run-job
 * requests wait for each other's statements anyway; gathering the inserts that arrive while one
 * statement runs into the next statement pays PGlite's per-statement and per-commit cost once
 * per batch instead of once per job. PGlite runs a statement on this thread, so requests
 * that arrive meanwhile are only read after it: a batch starts at `setImmediate`, once the
 * event loop has read every request that is ready, and a lone request waits one loop turn.
 */
export class JobInsertBatcher {
  private waiting: Waiting[] = [];
  private draining = false;

  constructor(
    readonly db: Database,
    private readonly maxBatch = 200,
  ) {}

  /** The job's id, or undefined when its target no longer holds (nothing was inserted). */
  insert(guarded: GuardedJob): Promise<string | undefined> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ ...guarded, resolve, reject });
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
        const ids = await insertJobsIfTargetsCurrent(this.db, batch);
        batch.forEach((waiting, i) => waiting.resolve(ids[i]));
      } catch (error) {
        // One bad row fails the statement: insert the batch one by one, so only it fails.
        if (batch.length === 1) batch[0]!.reject(error);
        else await this.oneByOne(batch);
      }
      // Let the requests that arrived during the statement join the next batch.
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.draining = false;
  }

  private async oneByOne(batch: Waiting[]): Promise<void> {
    for (const waiting of batch) {
      try {
        const [id] = await insertJobsIfTargetsCurrent(this.db, [waiting]);
        waiting.resolve(id);
      } catch (error) {
        waiting.reject(error);
      }
    }
  }
}
