/** Both drivers return timestamptz as Date; the API speaks ISO 8601 strings. */
export function iso(value: Date | string): string {
  return value instanceof Date ? value.toISOString() : new Date(value).toISOString();
}

export function isoOrNull(value: Date | string | null): string | null {
  return value === null ? null : iso(value);
}

/** JSON parameters go in as text with an explicit ::jsonb cast (see db/database.ts). */
export function json(value: unknown): string {
  return JSON.stringify(value);
}
