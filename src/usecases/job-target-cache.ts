import type { JobTarget } from '../repositories/job-targets.repository.js';

/**
 * The job targets this process read recently, so that running a job is one statement: the
 * insert itself checks that a remembered target is still current (see `insertJob`'s guard) and
 * inserts nothing when it is not, and the caller then reads it afresh. Being only a hint, it is
 * safe across processes and needs no invalidation; it is bounded, oldest entry out first.
 */
export class JobTargetCache {
  private readonly targets = new Map<string, JobTarget>();

  constructor(private readonly capacity = 10_000) {}

  get(key: string): JobTarget | undefined {
    return this.targets.get(key);
  }

  set(key: string, target: JobTarget): void {
    this.targets.delete(key);
    this.targets.set(key, target);
    if (this.targets.size > this.capacity) {
      const oldest = this.targets.keys().next().value as string;
      this.targets.delete(oldest);
    }
  }

  delete(key: string): void {
    this.targets.delete(key);
  }

  get size(): number {
    return this.targets.size;
  }

  static key(clientId: string, domainId: string, serviceId: string | null, key: string): string {
    // JSON keeps the parts apart whatever characters ids contain.
    return JSON.stringify([clientId, domainId, serviceId, key]);
  }
}
