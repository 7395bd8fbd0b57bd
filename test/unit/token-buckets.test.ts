import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TokenBuckets } from '../../src/limits/token-buckets.js';

/** Buckets on a clock the test moves by hand. */
function bucketsAt(rate: number, burst: number, capacity?: number) {
  const clock = { ms: 0 };
  const buckets = new TokenBuckets(rate, burst, capacity, () => clock.ms);
  return { buckets, clock };
}

function takeUntilRefused(buckets: TokenBuckets, key: string, max = 10_000): number {
  for (let allowed = 0; allowed < max; allowed++) {
    if (!buckets.take(key).allowed) return allowed;
  }
  return max;
}

describe('TokenBuckets', () => {
  it('allows a burst, then refuses with a whole-second Retry-After', () => {
    const { buckets } = bucketsAt(10, 20);
    assert.equal(takeUntilRefused(buckets, 'a'), 20);
    const refused = buckets.take('a');
    assert.deepEqual(refused, { allowed: false, retryAfterS: 1 });
  });

  it('refills at the rate, never above the burst', () => {
    const { buckets, clock } = bucketsAt(10, 20);
    takeUntilRefused(buckets, 'a');
    clock.ms += 500; // 5 tokens at 10 per second
    assert.equal(takeUntilRefused(buckets, 'a'), 5);
    clock.ms += 60_000; // a minute idle refills to the burst, not to 600
    assert.equal(takeUntilRefused(buckets, 'a'), 20);
  });

  it('keeps keys apart: one key refused does not refuse another', () => {
    const { buckets } = bucketsAt(5, 5);
    assert.equal(takeUntilRefused(buckets, 'flood'), 5);
    assert.equal(buckets.take('flood').allowed, false);
    assert.equal(buckets.take('quiet').allowed, true);
  });

  it('says how long until a token at a slow rate', () => {
    const { buckets, clock } = bucketsAt(0.25, 1); // one request every 4 s
    assert.equal(buckets.take('a').allowed, true);
    assert.deepEqual(buckets.take('a'), { allowed: false, retryAfterS: 4 });
    clock.ms += 2500;
    assert.deepEqual(buckets.take('a'), { allowed: false, retryAfterS: 2 });
    clock.ms += 1500;
    assert.equal(buckets.take('a').allowed, true);
  });

  it('drops buckets idle long enough to be full again', () => {
    const { buckets, clock } = bucketsAt(10, 10);
    for (let i = 0; i < 100; i++) buckets.take(`idle-${i}`);
    assert.equal(buckets.size, 100);
    clock.ms += 1000; // refilled (10 tokens at 10 per second): each is as good as absent
    buckets.take('busy');
    assert.equal(buckets.size, 1);
  });

  it('keeps a bucket that is still refilling', () => {
    const { buckets, clock } = bucketsAt(1, 10); // 10 s to refill
    takeUntilRefused(buckets, 'a');
    clock.ms += 5000;
    buckets.take('b');
    assert.equal(buckets.size, 2);
    // Dropping it would hand back a full bucket; it has only 5 tokens.
    assert.equal(takeUntilRefused(buckets, 'a'), 5);
  });

  it('holds at most its capacity, dropping the least recently used key', () => {
    const { buckets } = bucketsAt(1, 3, 2);
    takeUntilRefused(buckets, 'a');
    takeUntilRefused(buckets, 'b');
    buckets.take('a'); // a is now the most recently used
    buckets.take('c');
    assert.equal(buckets.size, 2);
    assert.equal(buckets.take('a').allowed, false, 'a was kept, still empty');
    assert.equal(buckets.take('b').allowed, true, 'b was dropped and starts again full');
  });

  it('refuses settings that could never allow a request', () => {
    assert.throws(() => new TokenBuckets(0, 10));
    assert.throws(() => new TokenBuckets(10, 0));
  });
});
