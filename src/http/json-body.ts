import secureJson from 'secure-json-parse';
import { badRequest } from '../domain/errors.js';

/** Default for PIE_MAX_JSON_DEPTH: far beyond any body PIE's routes describe. */
export const DEFAULT_MAX_JSON_DEPTH = 32;

// Half of a surrogate pair without the other half: not Unicode, and jsonb refuses it.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Parses a request body. Beyond JSON syntax it refuses what PostgreSQL cannot store or what
 * could subvert the process: NUL characters and unpaired surrogates (neither text nor jsonb
 * can hold them), numbers beyond a double's range (JSON.parse makes them Infinity), and
 * `__proto__`/`constructor.prototype` keys (prototype poisoning). `-0` becomes `0`, as jsonb
 * stores it, so a body compares equal to what was stored from it. Objects and arrays nested
 * deeper than `maxDepth` are refused before parsing, since every later step (the reviver,
 * validation, jsonb) walks them recursively.
 */
export function parseJsonBody(text: string, maxDepth = DEFAULT_MAX_JSON_DEPTH): unknown {
  if (text.trim() === '') return undefined;
  if (nestsDeeperThan(text, maxDepth)) {
    throw badRequest(`request body nests objects and arrays deeper than ${maxDepth} levels`);
  }
  let nulAt: string | undefined;
  let unstorable: string | undefined;
  let parsed: unknown;
  try {
    parsed = secureJson.parse(
      text,
      (key: string, value: unknown) => {
        if (key.includes('\0') || (typeof value === 'string' && value.includes('\0'))) {
          nulAt ??= key === '' ? 'a value' : `"${key.replace(/\0/g, '\\u0000')}"`;
        }
        if (LONE_SURROGATE.test(key) || (typeof value === 'string' && LONE_SURROGATE.test(value))) {
          unstorable ??= 'an unpaired UTF-16 surrogate (\\ud800 to \\udfff alone)';
        }
        if (typeof value === 'number' && !Number.isFinite(value)) {
          unstorable ??= 'a number too large to represent';
        }
        return Object.is(value, -0) ? 0 : value;
      },
      { protoAction: 'error', constructorAction: 'error' },
    );
  } catch {
    throw badRequest('request body is not valid JSON');
  }
  if (nulAt !== undefined) {
    throw badRequest(`request body has a NUL character (\\u0000) in ${nulAt}; it cannot be stored`);
  }
  if (unstorable !== undefined) {
    throw badRequest(`request body has ${unstorable}; it cannot be stored`);
  }
  return parsed;
}

/**
 * Whether `text` opens more than `maxDepth` objects or arrays inside one another. A scan of the
 * raw text, skipping strings, so it cannot itself recurse; malformed JSON is left to the parser.
 */
export function nestsDeeperThan(text: string, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxDepth) return true;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return false;
}
