import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  FEATURE_TYPES,
  describeProblems,
  resolveFeatures,
  validateFeatureDefinitions,
  type FeatureDefinition,
  type FeatureType,
  type Problem,
} from '../../src/domain/features.js';

const TYPE_LIST = 'string, number, integer, boolean, enum, string[], number[], object';

function feature(type: FeatureType, extra: Partial<FeatureDefinition> = {}): FeatureDefinition {
  return { name: 'f', type, required: true, ...extra };
}

function problemsOf(result: { ok: boolean; problems?: Problem[] }): Problem[] {
  assert.equal(result.ok, false, 'expected a failed validation');
  return result.problems ?? [];
}

describe('resolveFeatures', () => {
  describe('type checks', () => {
    const cases: {
      type: FeatureType;
      values?: string[];
      valid: unknown[];
      invalid: [unknown, string][];
    }[] = [
      {
        type: 'string',
        valid: ['', 'abc'],
        invalid: [
          [5, 'must be a string, got number 5'],
          [true, 'must be a string, got boolean'],
          [['a'], 'must be a string, got array'],
          [{}, 'must be a string, got object'],
        ],
      },
      {
        type: 'number',
        valid: [0, -2.5, 1e300],
        invalid: [
          ['1', 'must be a number, got string'],
          [Number.NaN, 'must be a number, got number NaN'],
          [Number.POSITIVE_INFINITY, 'must be a number, got number Infinity'],
          [Number.NEGATIVE_INFINITY, 'must be a number, got number -Infinity'],
          [false, 'must be a number, got boolean'],
        ],
      },
      {
        type: 'integer',
        valid: [0, -7, 42],
        invalid: [
          [1.5, 'must be an integer, got number 1.5'],
          ['3', 'must be an integer, got string'],
          [Number.NaN, 'must be an integer, got number NaN'],
          [Number.POSITIVE_INFINITY, 'must be an integer, got number Infinity'],
        ],
      },
      {
        type: 'boolean',
        valid: [true, false],
        invalid: [
          ['true', 'must be a boolean, got string'],
          [0, 'must be a boolean, got number 0'],
        ],
      },
      {
        type: 'enum',
        values: ['car', 'bike'],
        valid: ['car', 'bike'],
        invalid: [
          ['bus', 'must be one of "car", "bike", got "bus"'],
          ['Car', 'must be one of "car", "bike", got "Car"'],
          [1, 'must be one of "car", "bike", got number 1'],
          [['car'], 'must be one of "car", "bike", got array'],
        ],
      },
      {
        type: 'string[]',
        valid: [[], ['a', 'b']],
        invalid: [
          ['a', 'must be an array of strings, got string'],
          [['a', 1], 'must be an array of strings, got number 1 at index 1'],
          [['a', null], 'must be an array of strings, got null at index 1'],
          [{ 0: 'a' }, 'must be an array of strings, got object'],
        ],
      },
      {
        type: 'number[]',
        valid: [[], [1, 2.5, -3]],
        invalid: [
          [1, 'must be an array of numbers, got number 1'],
          [[1, '2'], 'must be an array of numbers, got string at index 1'],
          [[Number.NaN], 'must be an array of numbers, got number NaN at index 0'],
          [
            [1, 2, Number.POSITIVE_INFINITY],
            'must be an array of numbers, got number Infinity at index 2',
          ],
        ],
      },
      {
        type: 'object',
        valid: [{}, { a: 1, b: [2] }],
        invalid: [
          [[], 'must be an object, got array'],
          [[{ a: 1 }], 'must be an object, got array'],
          ['{}', 'must be an object, got string'],
          [3, 'must be an object, got number 3'],
        ],
      },
    ];

    it('covers every feature type', () => {
      assert.deepEqual(
        cases.map((c) => c.type),
        [...FEATURE_TYPES],
      );
    });

    for (const { type, values, valid, invalid } of cases) {
      const contract = [feature(type, values ? { values } : {})];

      it(`${type} accepts valid values`, () => {
        for (const value of valid) {
          assert.deepEqual(resolveFeatures(contract, { f: value }), {
            ok: true,
            value: { f: value },
          });
        }
      });

      it(`${type} rejects invalid values`, () => {
        for (const [value, message] of invalid) {
          assert.deepEqual(resolveFeatures(contract, { f: value }), {
            ok: false,
            problems: [{ feature: 'f', message }],
          });
        }
      });
    }

    it('rejects an invalid provided value even when a default exists', () => {
      const contract = [feature('integer', { required: false, default: 3 })];
      assert.deepEqual(resolveFeatures(contract, { f: 'x' }), {
        ok: false,
        problems: [{ feature: 'f', message: 'must be an integer, got string' }],
      });
    });

    it('truncates long string values in enum messages', () => {
      const contract = [feature('enum', { values: ['a'] })];
      assert.deepEqual(resolveFeatures(contract, { f: 'x'.repeat(50) }), {
        ok: false,
        problems: [{ feature: 'f', message: `must be one of "a", got "${'x'.repeat(40)}…"` }],
      });
    });
  });

  describe('defaults, missing and extras', () => {
    const contract: FeatureDefinition[] = [
      { name: 'route', type: 'string', required: true },
      { name: 'speed', type: 'number', required: false, default: 50 },
      { name: 'tags', type: 'string[]', required: false, default: ['x'] },
      { name: 'note', type: 'string', required: false },
    ];

    it('applies defaults and omits optional features with neither value nor default', () => {
      assert.deepEqual(resolveFeatures(contract, { route: 'A1' }), {
        ok: true,
        value: { route: 'A1', speed: 50, tags: ['x'] },
      });
    });

    it('lets a provided value override the default', () => {
      assert.deepEqual(resolveFeatures(contract, { route: 'A1', speed: 80, tags: [], note: 'n' }), {
        ok: true,
        value: { route: 'A1', speed: 80, tags: [], note: 'n' },
      });
    });

    it('reports a missing required feature', () => {
      assert.deepEqual(resolveFeatures(contract, {}), {
        ok: false,
        problems: [{ feature: 'route', message: 'required feature is missing' }],
      });
    });

    it('applies a default to a required feature that is not provided', () => {
      const withDefault = [feature('boolean', { default: false })];
      assert.deepEqual(resolveFeatures(withDefault, {}), { ok: true, value: { f: false } });
    });

    it('treats null as not provided', () => {
      assert.deepEqual(resolveFeatures(contract, { route: 'A1', speed: null, note: null }), {
        ok: true,
        value: { route: 'A1', speed: 50, tags: ['x'] },
      });
      assert.deepEqual(resolveFeatures(contract, { route: null }), {
        ok: false,
        problems: [{ feature: 'route', message: 'required feature is missing' }],
      });
    });

    it('drops provided keys the contract does not define', () => {
      assert.deepEqual(resolveFeatures(contract, { route: 'A1', extra: 1, speeed: 'typo' }), {
        ok: true,
        value: { route: 'A1', speed: 50, tags: ['x'] },
      });
    });

    it('does not read inherited properties or let "__proto__" change the prototype', () => {
      const tricky = [
        feature('string', { name: 'constructor', required: true }),
        feature('number', { name: '__proto__', required: false }),
      ];
      assert.deepEqual(resolveFeatures(tricky, {}), {
        ok: false,
        problems: [{ feature: 'constructor', message: 'required feature is missing' }],
      });
      const provided = JSON.parse('{"constructor":"c","__proto__":7}') as Record<string, unknown>;
      const result = resolveFeatures(tricky, provided);
      assert.ok(result.ok);
      assert.equal(Object.getPrototypeOf(result.value), Object.prototype);
      assert.deepEqual(Object.entries(result.value), [
        ['constructor', 'c'],
        ['__proto__', 7],
      ]);
    });

    it('returns defaults that cannot be used to mutate the contract', () => {
      const result = resolveFeatures(contract, { route: 'A1' });
      assert.ok(result.ok);
      (result.value.tags as string[]).push('y');
      assert.deepEqual(contract[2]?.default, ['x']);
    });

    it('reports every missing or mistyped feature at once, in contract order', () => {
      const many: FeatureDefinition[] = [
        { name: 'route', type: 'string', required: true },
        { name: 'speed', type: 'number', required: true },
        { name: 'lanes', type: 'integer', required: false },
        { name: 'mode', type: 'enum', required: true, values: ['a', 'b'] },
        { name: 'ok', type: 'boolean', required: false, default: true },
      ];
      const result = resolveFeatures(many, { speed: 'fast', lanes: 1.5, ok: true, junk: 1 });
      assert.deepEqual(result, {
        ok: false,
        problems: [
          { feature: 'route', message: 'required feature is missing' },
          { feature: 'speed', message: 'must be a number, got string' },
          { feature: 'lanes', message: 'must be an integer, got number 1.5' },
          { feature: 'mode', message: 'required feature is missing' },
        ],
      });
    });

    it('resolves an empty contract to no features', () => {
      assert.deepEqual(resolveFeatures([], { a: 1 }), { ok: true, value: {} });
    });
  });
});

describe('describeProblems', () => {
  it('joins problems into one line', () => {
    assert.equal(
      describeProblems([
        { feature: 'route', message: 'required feature is missing' },
        { feature: 'speed', message: 'must be a number, got string' },
      ]),
      'route: required feature is missing; speed: must be a number, got string',
    );
  });

  it('returns an empty string for no problems', () => {
    assert.equal(describeProblems([]), '');
  });
});

describe('validateFeatureDefinitions', () => {
  describe('valid contracts', () => {
    it('normalises definitions: required defaulted, canonical key order, absent keys omitted', () => {
      const result = validateFeatureDefinitions([
        { description: 'Route id', type: 'string', name: 'route' },
        { values: ['car', 'bike'], default: 'car', required: true, type: 'enum', name: 'mode' },
        { name: 'speed', type: 'number', required: false, default: 1.5, description: 'km/h' },
        { name: 'meta.v-1_x', type: 'object', default: { a: [1] } },
        { name: 'a'.repeat(128), type: 'number[]', default: [] },
      ]);
      assert.deepEqual(result, {
        ok: true,
        value: [
          { name: 'route', type: 'string', required: false, description: 'Route id' },
          { name: 'mode', type: 'enum', required: true, default: 'car', values: ['car', 'bike'] },
          { name: 'speed', type: 'number', required: false, default: 1.5, description: 'km/h' },
          { name: 'meta.v-1_x', type: 'object', required: false, default: { a: [1] } },
          { name: 'a'.repeat(128), type: 'number[]', required: false, default: [] },
        ],
      });
      assert.ok(result.ok);
      assert.deepEqual(
        result.value.map((d) => Object.keys(d)),
        [
          ['name', 'type', 'required', 'description'],
          ['name', 'type', 'required', 'default', 'values'],
          ['name', 'type', 'required', 'default', 'description'],
          ['name', 'type', 'required', 'default'],
          ['name', 'type', 'required', 'default'],
        ],
      );
    });

    it('accepts a matching default for every type', () => {
      const defaults: Record<FeatureType, unknown> = {
        string: '',
        number: -0.5,
        integer: 3,
        boolean: false,
        enum: 'b',
        'string[]': ['x'],
        'number[]': [1, 2],
        object: {},
      };
      const input = FEATURE_TYPES.map((type) => ({
        name: type.replace('[]', '_list'),
        type,
        default: defaults[type],
        ...(type === 'enum' ? { values: ['a', 'b'] } : {}),
      }));
      const result = validateFeatureDefinitions(input);
      assert.ok(result.ok, describeProblems(result.ok ? [] : result.problems));
      assert.deepEqual(
        result.value.map((d) => d.default),
        FEATURE_TYPES.map((type) => defaults[type]),
      );
    });

    it('accepts an empty list', () => {
      assert.deepEqual(validateFeatureDefinitions([]), { ok: true, value: [] });
    });

    it('drops keys outside the definition shape', () => {
      assert.deepEqual(validateFeatureDefinitions([{ name: 'a', type: 'string', extra: 1 }]), {
        ok: true,
        value: [{ name: 'a', type: 'string', required: false }],
      });
    });
  });

  describe('problems', () => {
    function single(entry: unknown): Problem[] {
      return problemsOf(validateFeatureDefinitions([entry]));
    }

    it('rejects input that is not an array', () => {
      for (const [input, got] of [
        [{ name: 'a', type: 'string' }, 'object'],
        [null, 'null'],
        ['[]', 'string'],
        [undefined, 'undefined'],
      ] as const) {
        assert.deepEqual(problemsOf(validateFeatureDefinitions(input)), [
          { feature: 'features', message: `must be an array, got ${got}` },
        ]);
      }
    });

    it('rejects entries that are not objects', () => {
      assert.deepEqual(problemsOf(validateFeatureDefinitions(['a', null, [], 4])), [
        { feature: 'features[0]', message: 'must be an object, got string' },
        { feature: 'features[1]', message: 'must be an object, got null' },
        { feature: 'features[2]', message: 'must be an object, got array' },
        { feature: 'features[3]', message: 'must be an object, got number 4' },
      ]);
    });

    it('rejects a missing or non-string name', () => {
      assert.deepEqual(single({ type: 'string' }), [
        { feature: 'features[0]', message: 'name is required' },
      ]);
      assert.deepEqual(single({ name: 7, type: 'string' }), [
        { feature: 'features[0]', message: 'name must be a string, got number 7' },
      ]);
      assert.deepEqual(single({ name: null, type: 'string' }), [
        { feature: 'features[0]', message: 'name must be a string, got null' },
      ]);
    });

    it('rejects malformed names', () => {
      for (const name of ['', 'a'.repeat(129), 'has space', ' lead', 'semi;colon', 'é']) {
        assert.deepEqual(single({ name, type: 'string' }), [
          { feature: 'features[0]', message: 'name must be 1-128 characters of A-Za-z0-9._-' },
        ]);
      }
    });

    it('rejects duplicate names, once per repeat', () => {
      const input = [
        { name: 'a', type: 'string' },
        { name: 'b', type: 'string' },
        { name: 'a', type: 'number' },
        { name: 'a', type: 'boolean' },
      ];
      assert.deepEqual(problemsOf(validateFeatureDefinitions(input)), [
        { feature: 'a', message: 'duplicate feature name' },
        { feature: 'a', message: 'duplicate feature name' },
      ]);
    });

    it('treats names as case-sensitive', () => {
      const result = validateFeatureDefinitions([
        { name: 'a', type: 'string' },
        { name: 'A', type: 'string' },
      ]);
      assert.equal(result.ok, true);
    });

    it('rejects an unknown or missing type', () => {
      assert.deepEqual(single({ name: 'a', type: 'float' }), [
        { feature: 'a', message: `unknown type "float"; expected one of ${TYPE_LIST}` },
      ]);
      assert.deepEqual(single({ name: 'a', type: 'String' }), [
        { feature: 'a', message: `unknown type "String"; expected one of ${TYPE_LIST}` },
      ]);
      assert.deepEqual(single({ name: 'a', type: 3 }), [
        { feature: 'a', message: `unknown type number 3; expected one of ${TYPE_LIST}` },
      ]);
      assert.deepEqual(single({ name: 'a' }), [
        { feature: 'a', message: `type is required; expected one of ${TYPE_LIST}` },
      ]);
    });

    it('rejects a non-boolean required', () => {
      assert.deepEqual(single({ name: 'a', type: 'string', required: 'yes' }), [
        { feature: 'a', message: 'required must be a boolean, got string' },
      ]);
      assert.deepEqual(single({ name: 'a', type: 'string', required: null }), [
        { feature: 'a', message: 'required must be a boolean, got null' },
      ]);
    });

    it('rejects enums without a non-empty list of unique string values', () => {
      const message = 'enum needs a non-empty list of unique string values';
      for (const values of [undefined, [], ['a', 'a'], ['a', 1], 'a', null, [null]]) {
        assert.deepEqual(single({ name: 'e', type: 'enum', values }), [{ feature: 'e', message }]);
      }
    });

    it('rejects values on non-enum features', () => {
      for (const type of FEATURE_TYPES.filter((t) => t !== 'enum')) {
        assert.deepEqual(single({ name: 'a', type, values: ['x'] }), [
          { feature: 'a', message: 'values is only allowed for enum features' },
        ]);
      }
    });

    it('rejects a default of the wrong type, for every type', () => {
      const cases: [FeatureType, unknown, string][] = [
        ['string', 1, 'default must be a string, got number 1'],
        ['string', null, 'default must be a string, got null'],
        ['number', '1', 'default must be a number, got string'],
        ['number', null, 'default must be a number, got null'],
        ['integer', 1.5, 'default must be an integer, got number 1.5'],
        ['integer', null, 'default must be an integer, got null'],
        ['boolean', 'false', 'default must be a boolean, got string'],
        ['boolean', null, 'default must be a boolean, got null'],
        ['string[]', ['a', 2], 'default must be an array of strings, got number 2 at index 1'],
        ['string[]', null, 'default must be an array of strings, got null'],
        ['number[]', 'abc', 'default must be an array of numbers, got string'],
        ['number[]', null, 'default must be an array of numbers, got null'],
        ['object', [], 'default must be an object, got array'],
        ['object', null, 'default must be an object, got null'],
      ];
      for (const [type, value, message] of cases) {
        assert.deepEqual(single({ name: 'd', type, default: value }), [{ feature: 'd', message }]);
      }
    });

    it('rejects an enum default that is not one of the values', () => {
      for (const value of ['c', 'A', 1, null, ['a']]) {
        assert.deepEqual(single({ name: 'e', type: 'enum', values: ['a', 'b'], default: value }), [
          { feature: 'e', message: 'default must be one of the enum values' },
        ]);
      }
    });

    it('rejects a non-string description', () => {
      assert.deepEqual(single({ name: 'a', type: 'string', description: 5 }), [
        { feature: 'a', message: 'description must be a string, got number 5' },
      ]);
    });

    it('reports every problem at once, each named', () => {
      const input = [
        { name: 'ok', type: 'string' },
        'junk',
        { type: 'string' },
        { name: 'bad name', type: 'float', default: 1 },
        { name: 'ok', type: 'integer', default: 1.5, values: ['x'], description: false },
        { name: 'mode', type: 'enum', values: [], default: 'a' },
        { name: 'level', type: 'enum', values: ['lo', 'hi'], default: 'mid', required: 1 },
      ];
      const problems = problemsOf(validateFeatureDefinitions(input));
      assert.deepEqual(problems, [
        { feature: 'features[1]', message: 'must be an object, got string' },
        { feature: 'features[2]', message: 'name is required' },
        { feature: 'features[3]', message: 'name must be 1-128 characters of A-Za-z0-9._-' },
        { feature: 'features[3]', message: `unknown type "float"; expected one of ${TYPE_LIST}` },
        { feature: 'ok', message: 'duplicate feature name' },
        { feature: 'ok', message: 'values is only allowed for enum features' },
        { feature: 'ok', message: 'default must be an integer, got number 1.5' },
        { feature: 'ok', message: 'description must be a string, got boolean' },
        { feature: 'mode', message: 'enum needs a non-empty list of unique string values' },
        { feature: 'level', message: 'required must be a boolean, got number 1' },
        { feature: 'level', message: 'default must be one of the enum values' },
      ]);
      assert.equal(
        describeProblems(problems.slice(0, 2)),
        'features[1]: must be an object, got string; features[2]: name is required',
      );
    });
  });
});
