import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AppError } from '../../src/domain/errors.js';
import { parseJsonBody } from '../../src/http/json-body.js';

// Found by the fuzzer: PostgreSQL refuses these in jsonb (a 500 before) or silently changes
// them (Infinity became null), so they are a 400 at the door.
describe('parseJsonBody refuses what cannot be stored', () => {
  const refused = (text: string, mention: RegExp) =>
    assert.throws(
      () => parseJsonBody(text),
      (error: unknown) =>
        error instanceof AppError && error.status === 400 && mention.test(error.message),
    );

  it('an unpaired surrogate in a value or a key', () => {
    refused('{"input": {"text": "a\\ud800b"}}', /surrogate/);
    refused('{"input": {"text": "\\udc00"}}', /surrogate/);
    refused('{"input": {"\\ud83d": 1}}', /surrogate/);
  });

  it('a number beyond a double', () => {
    refused('{"input": {"n": 1e400}}', /too large/);
    refused('{"input": {"n": -1e400}}', /too large/);
  });

  it('keeps what can be stored: surrogate pairs, large finite numbers', () => {
    assert.deepEqual(parseJsonBody('{"t": "\\ud83d\\ude00", "n": 1e308}'), {
      t: '😀',
      n: 1e308,
    });
  });
});
