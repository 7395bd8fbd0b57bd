import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jobStatsOf } from '../../src/domain/job-stats.js';

describe('job statistics as answered', () => {
  const since = new Date('2026-11-29T09:01:00.000Z');
  const asOf = new Date('2026-11-29T10:00:31.412Z');
  const minute = (i: number) => new Date(since.getTime() + i * 60_000);

  it('has every status and every minute of the hour, zeros where nothing was read', () => {
    const stats = jobStatsOf({ asOf, since, counts: [], activity: [] });
    assert.equal(stats.as_of, '2026-11-29T10:00:31.412Z');
    assert.deepEqual(stats.jobs_by_status, {
      queued: 0,
      dispatched: 0,
      running: 0,
      success: 0,
      failure: 0,
      cancelled: 0,
    });
    assert.equal(stats.throughput.bucket_s, 60);
    assert.equal(stats.throughput.since, '2026-11-29T09:01:00.000Z');
    assert.equal(stats.throughput.buckets.length, 60);
    assert.equal(stats.throughput.buckets[0]!.at, '2026-11-29T09:01:00.000Z');
    assert.equal(stats.throughput.buckets[59]!.at, '2026-11-29T10:00:00.000Z');
    for (const bucket of stats.throughput.buckets) assert.equal(bucket.success, 0);
  });

  it('puts each minute read in its bucket, and ignores minutes outside the hour', () => {
    const stats = jobStatsOf({
      asOf,
      since,
      counts: [
        { status: 'success', count: 10_412 },
        { status: 'queued', count: 12 },
      ],
      activity: [
        { minute: minute(0), status: 'queued', count: 4 },
        { minute: minute(0), status: 'success', count: 3 },
        { minute: minute(59), status: 'failure', count: 1 },
        { minute: minute(-1), status: 'success', count: 100 },
        { minute: minute(60), status: 'success', count: 100 },
      ],
    });
    assert.equal(stats.jobs_by_status.success, 10_412);
    assert.equal(stats.jobs_by_status.queued, 12);
    const buckets = stats.throughput.buckets;
    assert.deepEqual([buckets[0]!.queued, buckets[0]!.success, buckets[59]!.failure], [4, 3, 1]);
    const successes = buckets.reduce((sum, bucket) => sum + bucket.success, 0);
    assert.equal(successes, 3, 'the minutes before and after the hour are left out');
  });

  it('never answers a count below zero', () => {
    // Retention deleted jobs whose creation the sequencer had not counted yet.
    const stats = jobStatsOf({
      asOf,
      since,
      counts: [{ status: 'success', count: -3 }],
      activity: [],
    });
    assert.equal(stats.jobs_by_status.success, 0);
  });
});
