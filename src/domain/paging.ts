import { badRequest } from './errors.js';

/**
 * Keyset paging: a cursor is the sort key of the last row of a page, opaque to callers
 * (base64url JSON). Repositories fetch `limit + 1` rows to learn whether another page exists.
 */
export interface PageRequest {
  limit: number;
  after: string[] | undefined;
}

export interface PageResult<T> {
  items: T[];
  next_cursor: string | null;
}

export function pageRequest(
  query: { limit?: number; cursor?: string },
  keyLength: number,
): PageRequest {
  return { limit: query.limit ?? 50, after: decodeCursor(query.cursor, keyLength) };
}

export function toPage<T>(rows: T[], limit: number, keyOf: (row: T) => string[]): PageResult<T> {
  if (rows.length <= limit) return { items: rows, next_cursor: null };
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items, next_cursor: last === undefined ? null : encodeCursor(keyOf(last)) };
}

function encodeCursor(key: string[]): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

function decodeCursor(cursor: string | undefined, keyLength: number): string[] | undefined {
  if (cursor === undefined || cursor === '') return undefined;
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    key = undefined;
  }
  if (
    !Array.isArray(key) ||
    key.length !== keyLength ||
    !key.every((part): part is string => typeof part === 'string' && !part.includes('\0'))
  ) {
    throw badRequest('cursor is not valid; pass the next_cursor of a previous page');
  }
  return key;
}

// PostgreSQL has no year 0 (1 BC comes before 1 AD), though JavaScript dates do.
const SORT_TIME = /^(?!0000)\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** What a cursor part goes into SQL as: a timestamptz, a uuid, or text (always castable). */
export type CursorPart = 'time' | 'uuid' | 'text';

function castable(value: string, part: CursorPart): boolean {
  if (part === 'uuid') return UUID.test(value);
  if (part === 'text') return true;
  const time = Date.parse(value);
  // The round trip catches well-formed but impossible dates such as February 30.
  return SORT_TIME.test(value) && !Number.isNaN(time) && new Date(time).toISOString() === value;
}

/**
 * A decoded cursor's parts go into SQL as the types `parts` names; a forged one PostgreSQL
 * could not cast (month 13, year 0, not a uuid) must be a 400, not a 500.
 */
export function requireCastableCursor(
  after: string[] | undefined,
  parts: readonly CursorPart[],
): void {
  if (after === undefined) return;
  if (!parts.every((part, i) => castable(after[i] ?? '', part))) {
    throw badRequest('cursor is not valid; pass the next_cursor of a previous page');
  }
}
