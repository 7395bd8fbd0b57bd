import assert from 'node:assert/strict';
import { errorMessage, type ApiResponse } from './test-server.js';

export function assertStatus(response: ApiResponse, status: number) {
  assert.equal(
    response.status,
    status,
    `expected ${status}, got ${response.status}: ${JSON.stringify(response.body)}`,
  );
}

/** Asserts the status and returns the body as the resource the test expects. */
export function expectBody<T>(response: ApiResponse, status: number): T {
  assertStatus(response, status);
  return response.body as T;
}

/** Asserts an error answer `{success: false, message}` whose message mentions each string. */
export function assertError(response: ApiResponse, status: number, ...mentions: string[]) {
  assertStatus(response, status);
  const message = errorMessage(response);
  for (const mention of mentions) {
    assert.ok(message.includes(mention), `message ${JSON.stringify(message)} lacks "${mention}"`);
  }
  return message;
}

export function assertIso(value: unknown, label: string) {
  assert.equal(typeof value, 'string', `${label} should be a string`);
  assert.equal(new Date(value as string).toISOString(), value, `${label} should be ISO 8601 UTC`);
}
