/**
 * `value` as JSON in base64url: how PIE writes a page cursor, and how a JWT carries its header
 * and claims. Tests use it to forge either.
 */
export function base64urlJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}
