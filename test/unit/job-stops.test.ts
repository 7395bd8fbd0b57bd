import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stopPayloads } from '../../src/lifecycle/job-stops.js';

describe('job stop payloads', () => {
  it('packs job ids into comma-separated payloads under 8000 bytes', () => {
    const jobIds = Array.from({ length: 10_000 }, (_, i) => String(100_000_000_000 + i));
    const payloads = stopPayloads(jobIds);
    assert.ok(payloads.length > 1);
    for (const payload of payloads) assert.ok(Buffer.byteLength(payload) < 8000);
    assert.deepEqual(payloads.join(',').split(','), jobIds);
  });

  it('names each job once', () => {
    assert.deepEqual(stopPayloads(['1', '2', '1']), ['1,2']);
    assert.deepEqual(stopPayloads([]), []);
  });

  it('says "check everything" (one empty payload) when the ids would take too many', () => {
    const jobIds = Array.from({ length: 20_000 }, (_, i) => String(100_000_000_000 + i));
    assert.deepEqual(stopPayloads(jobIds), ['']);
  });

  it('says "check everything" for an id a payload cannot carry', () => {
    assert.deepEqual(stopPayloads(['1', 'a,b']), ['']);
    assert.deepEqual(stopPayloads(['x'.repeat(9000)]), ['']);
  });
});
