/**
 * One token bucket per key: each holds up to `burst` tokens, refills at `rate` per second, and a
 * request takes one. The map is bounded: a bucket idle long enough to be full again is the same
 * as no bucket, so such entries are dropped, and past `capacity` keys the least recently used
 * one goes (it starts again full, which errs towards letting a request through).
 */
export type Take = { allowed: true } | { allowed: false; retryAfterS: number };

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date, in ms. */
  at: number;
}

export class TokenBuckets {
  // Insertion order is recency order: every take moves its key to the end.
  private readonly buckets = new Map<string, Bucket>();
  private readonly refillMs: number;
  private sweptAt: number;

  constructor(
    readonly rate: number,
    readonly burst: number,
    private readonly capacity = 100_000,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(rate > 0) || !(burst >= 1)) throw new Error('rate must be > 0 and burst >= 1');
    this.refillMs = (burst / rate) * 1000;
    this.sweptAt = now();
  }

  take(key: string): Take {
    const now = this.now();
    const bucket = this.buckets.get(key);
    let tokens = this.burst;
    if (bucket !== undefined) {
      tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) * this.rate) / 1000);
      this.buckets.delete(key);
    }
    const allowed = tokens >= 1;
    if (allowed) tokens -= 1;
    this.buckets.set(key, { tokens, at: now });
    this.evict(now);
    if (allowed) return { allowed };
    // Whole seconds (Retry-After has no fractions), and never 0, which would invite a retry now.
    return { allowed, retryAfterS: Math.max(1, Math.ceil((1 - tokens) / this.rate)) };
  }

  get size(): number {
    return this.buckets.size;
  }

  private evict(now: number): void {
    if (this.buckets.size > this.capacity) {
      this.buckets.delete(this.buckets.keys().next().value as string);
    }
    // Idle buckets sit at the front; at most one sweep a second, each stopping at the first
    // bucket still in use, so the cost follows the number dropped.
    if (now - this.sweptAt < 1000) return;
    this.sweptAt = now;
    for (const [key, bucket] of this.buckets) {
      if (now - bucket.at < this.refillMs) break;
      this.buckets.delete(key);
    }
  }
}
