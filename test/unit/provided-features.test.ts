import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergeProvidedFeatures } from '../../src/domain/provided-features.js';

describe('mergeProvidedFeatures', () => {
  it('adds new keys and replaces existing ones, keeping the others', () => {
    const merged = mergeProvidedFeatures(
      { route: 'route-a', capacity: 40, extra: true },
      { capacity: 60, mode: 'tram' },
    );
    assert.deepEqual(merged, { route: 'route-a', capacity: 60, extra: true, mode: 'tram' });
  });

  it('removes a key whose patch value is null', () => {
    const merged = mergeProvidedFeatures({ route: 'route-a', capacity: 40 }, { capacity: null });
    assert.deepEqual(merged, { route: 'route-a' });
    assert.equal(Object.hasOwn(merged, 'capacity'), false, 'the key is gone, not set to null');
  });

  it('removing a key that is not there changes nothing', () => {
    assert.deepEqual(mergeProvidedFeatures({ route: 'route-a' }, { absent: null }), {
      route: 'route-a',
    });
  });

  it('an empty patch gives an equal copy', () => {
    const provided = { route: 'route-a' };
    const merged = mergeProvidedFeatures(provided, {});
    assert.deepEqual(merged, provided);
    assert.notEqual(merged, provided, 'a new object');
  });

  it('replaces an object feature whole rather than merging into it', () => {
    const merged = mergeProvidedFeatures(
      { stops: { first: 'a', last: 'z' } },
      { stops: { first: 'b' } },
    );
    assert.deepEqual(merged, { stops: { first: 'b' } });
  });

  it('keeps falsy values that are not null: false, 0, empty string, empty list', () => {
    const merged = mergeProvidedFeatures(
      { a: 1, b: 1, c: 1, d: 1 },
      { a: false, b: 0, c: '', d: [] },
    );
    assert.deepEqual(merged, { a: false, b: 0, c: '', d: [] });
  });

  it('changes neither argument', () => {
    const provided = { route: 'route-a', capacity: 40 };
    const patch = { capacity: null, mode: 'bus' };
    mergeProvidedFeatures(provided, patch);
    assert.deepEqual(provided, { route: 'route-a', capacity: 40 });
    assert.deepEqual(patch, { capacity: null, mode: 'bus' });
  });

  it('treats "__proto__" as an ordinary key, never as the prototype', () => {
    const patch = JSON.parse('{"__proto__": {"polluted": true}}') as Record<string, unknown>;
    const merged = mergeProvidedFeatures({}, patch);
    assert.equal(Object.getPrototypeOf(merged), Object.prototype);
    assert.ok(Object.hasOwn(merged, '__proto__'));
    assert.equal((merged as { polluted?: unknown }).polluted, undefined);
    const removal = JSON.parse('{"__proto__": null}') as Record<string, unknown>;
    assert.deepEqual(Object.keys(mergeProvidedFeatures(merged, removal)), []);
  });
});
