export const FEATURE_TYPES = [
  'string',
  'number',
  'integer',
  'boolean',
  'enum',
  'string[]',
  'number[]',
  'object',
] as const;
export type FeatureType = (typeof FEATURE_TYPES)[number];

export interface FeatureDefinition {
  name: string;
  type: FeatureType;
  required: boolean;
  default?: unknown;
  values?: string[];
  description?: string;
}

/** `feature` is the feature name, or e.g. `features[3]` when the entry has no usable name. */
export interface Problem {
  feature: string;
  message: string;
}

export type Validation<T> = { ok: true; value: T } | { ok: false; problems: Problem[] };

export type FeatureValues = Record<string, unknown>;

const NAME_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;
const TYPE_LIST = FEATURE_TYPES.join(', ');

/**
 * Validates feature definitions (already-parsed JSON, possibly junk) and reports every problem.
 * On success returns them normalised: `required` filled in, keys in canonical order.
 */
export function validateFeatureDefinitions(input: unknown): Validation<FeatureDefinition[]> {
  if (!Array.isArray(input)) {
    return fail([{ feature: 'features', message: `must be an array, got ${describe(input)}` }]);
  }
  const problems: Problem[] = [];
  const seen = new Set<string>();
  const definitions: FeatureDefinition[] = [];
  input.forEach((entry: unknown, index) => {
    const definition = validateDefinition(entry, `features[${index}]`, seen, problems);
    if (definition) definitions.push(definition);
  });
  return problems.length > 0 ? fail(problems) : { ok: true, value: definitions };
}

function validateDefinition(
  entry: unknown,
  position: string,
  seen: Set<string>,
  problems: Problem[],
): FeatureDefinition | undefined {
  if (!isPlainObject(entry)) {
    problems.push({ feature: position, message: `must be an object, got ${describe(entry)}` });
    return undefined;
  }
  const { name, type, required = false, values, description } = entry;
  const defaultValue = entry.default;
  const before = problems.length;
  let label = position;
  const report = (message: string) => problems.push({ feature: label, message });

  if (typeof name !== 'string') {
    report(
      name === undefined ? 'name is required' : `name must be a string, got ${describe(name)}`,
    );
  } else if (!NAME_PATTERN.test(name)) {
    report('name must be 1-128 characters of A-Za-z0-9._-');
  } else {
    label = name;
    if (seen.has(name)) report('duplicate feature name');
    seen.add(name);
  }

  const knownType = isFeatureType(type);
  if (!knownType) {
    report(
      type === undefined
        ? `type is required; expected one of ${TYPE_LIST}`
        : `unknown type ${typeof type === 'string' ? quote(type) : describe(type)}; expected one of ${TYPE_LIST}`,
    );
  }
  if (typeof required !== 'boolean') {
    report(`required must be a boolean, got ${describe(required)}`);
  }

  const enumValues = type === 'enum' && isUniqueStringList(values) ? values : undefined;
  if (type === 'enum' && !enumValues) {
    report('enum needs a non-empty list of unique string values');
  } else if (knownType && type !== 'enum' && values !== undefined) {
    report('values is only allowed for enum features');
  }

  if (defaultValue !== undefined && knownType) {
    if (type === 'enum') {
      // Without valid values there is nothing to check the default against; already reported.
      if (enumValues && !(typeof defaultValue === 'string' && enumValues.includes(defaultValue))) {
        report('default must be one of the enum values');
      }
    } else {
      const mismatch = checkValue({ type }, defaultValue);
      if (mismatch) report(`default ${mismatch}`);
    }
  }

  if (description !== undefined && typeof description !== 'string') {
    report(`description must be a string, got ${describe(description)}`);
  }

  // The type checks repeat what was reported above; they narrow the types for the compiler.
  const invalid = typeof name !== 'string' || !knownType || typeof required !== 'boolean';
  if (problems.length > before || invalid) return undefined;
  const definition: FeatureDefinition = { name, type, required };
  if (defaultValue !== undefined) definition.default = defaultValue;
  if (enumValues) definition.values = [...enumValues];
  if (typeof description === 'string') definition.description = description;
  return definition;
}

/**
 * Resolves provided features against a valid contract: provided value, else default, else
 * missing if required. Keys the contract does not define are dropped.
 */
export function resolveFeatures(
  contract: readonly FeatureDefinition[],
  provided: FeatureValues,
): Validation<FeatureValues> {
  const problems: Problem[] = [];
  const resolved: [string, unknown][] = [];
  for (const definition of contract) {
    // hasOwn so names like "constructor" never pick up inherited properties.
    const value = Object.hasOwn(provided, definition.name) ? provided[definition.name] : undefined;
    if (value === undefined || value === null) {
      if (definition.default !== undefined) {
        // Cloned so callers mutating a resolved value cannot alter the frozen contract.
        resolved.push([definition.name, structuredClone(definition.default)]);
      } else if (definition.required) {
        problems.push({ feature: definition.name, message: 'required feature is missing' });
      }
      continue;
    }
    const mismatch = checkValue(definition, value);
    if (mismatch) problems.push({ feature: definition.name, message: mismatch });
    else resolved.push([definition.name, value]);
  }
  // fromEntries defines own properties, so a feature named "__proto__" stays an ordinary key.
  return problems.length > 0 ? fail(problems) : { ok: true, value: Object.fromEntries(resolved) };
}

export function describeProblems(problems: readonly Problem[]): string {
  return problems.map((problem) => `${problem.feature}: ${problem.message}`).join('; ');
}

/** Returns why `value` does not match the type, or undefined when it does. */
function checkValue(
  definition: Pick<FeatureDefinition, 'type' | 'values'>,
  value: unknown,
): string | undefined {
  switch (definition.type) {
    case 'string':
      return typeof value === 'string' ? undefined : `must be a string, got ${describe(value)}`;
    case 'number':
      return isFiniteNumber(value) ? undefined : `must be a number, got ${describe(value)}`;
    case 'integer':
      return Number.isInteger(value) ? undefined : `must be an integer, got ${describe(value)}`;
    case 'boolean':
      return typeof value === 'boolean' ? undefined : `must be a boolean, got ${describe(value)}`;
    case 'enum': {
      const values = definition.values ?? [];
      if (typeof value === 'string' && values.includes(value)) return undefined;
      const got = typeof value === 'string' ? quote(value) : describe(value);
      return `must be one of ${values.map(quote).join(', ')}, got ${got}`;
    }
    case 'string[]':
      return checkArray(value, 'strings', (item) => typeof item === 'string');
    case 'number[]':
      return checkArray(value, 'numbers', isFiniteNumber);
    case 'object':
      return isPlainObject(value) ? undefined : `must be an object, got ${describe(value)}`;
    default: {
      const unreachable: never = definition.type;
      throw new Error(`unhandled feature type ${String(unreachable)}`);
    }
  }
}

function checkArray(
  value: unknown,
  noun: string,
  isItem: (item: unknown) => boolean,
): string | undefined {
  if (!Array.isArray(value)) return `must be an array of ${noun}, got ${describe(value)}`;
  const index = value.findIndex((item) => !isItem(item));
  if (index === -1) return undefined;
  return `must be an array of ${noun}, got ${describe(value[index])} at index ${index}`;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return `number ${value}`;
  return typeof value;
}

function quote(text: string): string {
  // Provided values are user input; keep messages one short line.
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

function fail<T>(problems: Problem[]): Validation<T> {
  return { ok: false, problems };
}

function isFeatureType(value: unknown): value is FeatureType {
  return (FEATURE_TYPES as readonly unknown[]).includes(value);
}

function isFiniteNumber(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isUniqueStringList(value: unknown): value is string[] {
  return (
    Array.isArray(value) &&
    value.length > 0 &&
    value.every((item) => typeof item === 'string') &&
    new Set(value).size === value.length
  );
}
