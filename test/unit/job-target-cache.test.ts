import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JobTarget } from '../../src/repositories/job-targets.repository.js';
import { JobTargetCache } from '../../src/usecases/job-target-cache.js';

const target = (assignment_id: string) => ({ assignment_id }) as JobTarget;

describe('JobTargetCache', () => {
  it('keeps at most its capacity, dropping the least recently stored first', () => {
    const cache = new JobTargetCache(2);
    cache.set('a', target('1'));
    cache.set('b', target('2'));
    cache.set('a', target('3')); // stored again: now the newest
    cache.set('c', target('4'));
    assert.equal(cache.size, 2);
    assert.equal(cache.get('b'), undefined);
    assert.equal(cache.get('a')?.assignment_id, '3');
    assert.equal(cache.get('c')?.assignment_id, '4');
  });

  it('keys keep their parts apart whatever the ids contain', () => {
    const one = JobTargetCache.key('c', 'd:e', null, 'k');
    const two = JobTargetCache.key('c:d', 'e', null, 'k');
    assert.notEqual(one, two);
    assert.notEqual(JobTargetCache.key('c', 'd', null, 'k'), JobTargetCache.key('c', 'd', '', 'k'));
  });
});
