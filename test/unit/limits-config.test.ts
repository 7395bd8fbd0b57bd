import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/config.js';

describe('limits configuration', () => {
  it('defaults: 1000 requests per second, bursts of twice that, 100,000 open jobs, depth 32', () => {
    assert.deepEqual(loadConfig({}).limits, {
      rateLimitRps: 1000,
      rateLimitBurst: 2000,
      quotaOpenJobs: 100_000,
      maxJsonDepth: 32,
    });
  });

  it('reads each setting, the burst following the rate unless given', () => {
    const limits = loadConfig({
      PIE_RATE_LIMIT_RPS: '50',
      PIE_QUOTA_OPEN_JOBS: '10',
      PIE_MAX_JSON_DEPTH: '8',
    }).limits;
    assert.deepEqual(limits, {
      rateLimitRps: 50,
      rateLimitBurst: 100,
      quotaOpenJobs: 10,
      maxJsonDepth: 8,
    });
    assert.equal(loadConfig({ PIE_RATE_LIMIT_BURST: '7' }).limits.rateLimitBurst, 7);
  });

  it('0 turns the rate limit and the quota off', () => {
    const limits = loadConfig({ PIE_RATE_LIMIT_RPS: '0', PIE_QUOTA_OPEN_JOBS: '0' }).limits;
    assert.equal(limits.rateLimitRps, 0);
    assert.equal(limits.quotaOpenJobs, 0);
  });

  it('stops on a value that is not a whole number in range, naming the variable', () => {
    for (const [name, value] of [
      ['PIE_RATE_LIMIT_RPS', '-1'],
      ['PIE_RATE_LIMIT_RPS', '2.5'],
      ['PIE_RATE_LIMIT_BURST', '0'],
      ['PIE_QUOTA_OPEN_JOBS', 'many'],
      ['PIE_MAX_JSON_DEPTH', '0'],
    ] as const) {
      assert.throws(
        () => loadConfig({ [name]: value }),
        (error: unknown) => error instanceof ConfigError && error.message.includes(name),
      );
    }
  });
});
