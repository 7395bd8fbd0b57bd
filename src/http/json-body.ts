import secureJson from 'secure-json-parse';
import { badRequest } from './errors.js';

/**
 * Parses a request body. Beyond JSON syntax it refuses what PostgreSQL cannot store or what
 * could subvert the process: NUL characters (neither text nor jsonb can hold them) and
 * `__proto__`/`constructor.prototype` keys (prototype poisoning). `-0` becomes `0`, as jsonb
 * stores it, so a body compares equal to what was stored from it.
 */
export function parseJsonBody(text: string): unknown {
  if (text.trim() === '') return undefined;
  let nulAt: string | undefined;
  let parsed: unknown;
  try {
    parsed = secureJson.parse(
      text,
      (key: string, value: unknown) => {
        if (key.includes('\0') || (typeof value === 'string' && value.includes('\0'))) {
          nulAt ??= key === '' ? 'a value' : `"${key.replace(/\0/g, '\\u0000')}"`;
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
  return parsed;
}
