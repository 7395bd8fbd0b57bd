import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AppError } from '../../src/domain/errors.js';
import { nestsDeeperThan, parseJsonBody } from '../../src/http/json-body.js';

const nested = (depth: number) => '['.repeat(depth) + ']'.repeat(depth);

describe('JSON depth limit', () => {
  it('counts objects and arrays inside one another', () => {
    assert.equal(nestsDeeperThan('{"a":{"b":[1,{"c":2}]}}', 4), false);
    assert.equal(nestsDeeperThan('{"a":{"b":[1,{"c":2}]}}', 3), true);
    assert.equal(nestsDeeperThan('[[],[],[],[]]', 2), false, 'siblings do not add up');
    assert.equal(nestsDeeperThan('"scalar"', 0), false);
  });

  it('ignores brackets, quotes and escapes inside strings', () => {
    assert.equal(nestsDeeperThan(`{"text": "${'[{'.repeat(100)}"}`, 1), false);
    assert.equal(nestsDeeperThan('{"q": "a \\" [[[[ b"}', 1), false);
    assert.equal(nestsDeeperThan('{"q": "ends in a backslash \\\\", "r": [[1]]}', 2), true);
  });

  it('parses a body at the limit and refuses one level more with a 400', () => {
    assert.deepEqual(parseJsonBody(nested(32), 32), JSON.parse(nested(32)));
    assert.throws(
      () => parseJsonBody(nested(33), 32),
      (error: unknown) =>
        error instanceof AppError && error.status === 400 && /deeper than 32/.test(error.message),
    );
  });

  it('refuses a very deep body quickly, without recursing', () => {
    const started = performance.now();
    assert.throws(() => parseJsonBody(nested(500_000), 32), AppError);
    assert.ok(performance.now() - started < 1000);
  });
});
