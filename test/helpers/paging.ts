import assert from 'node:assert/strict';
import { expectBody } from './assertions.js';
import type { TestServer } from './test-server.js';

/** A page of any list route: its items, and the cursor of the next page (null on the last). */
export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

/** How many pages a listing may take before the test calls it endless. */
const MAX_PAGES = 1000;

/**
 * Follows next_cursor from the first page of `path` (which may carry a query string already)
 * to the last, `limit` items at a time, and returns every page. Each page must answer 200 with
 * an items list of at most `limit` and a string or null cursor, and the paging must end: a
 * cursor seen before, or more than MAX_PAGES pages, fails the test.
 */
export async function allPages<T>(
  server: TestServer,
  path: string,
  options: { limit: number; token?: string },
): Promise<Page<T>[]> {
  const { limit, token } = options;
  const separator = path.includes('?') ? '&' : '?';
  const pages: Page<T>[] = [];
  const cursors = new Set<string>();
  let cursor: string | null = null;
  do {
    const after: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
    const page = expectBody<Page<T>>(
      await server.get(`${path}${separator}limit=${limit}${after}`, { token }),
      200,
    );
    assert.ok(Array.isArray(page.items), 'items should be an array');
    assert.ok(page.items.length <= limit, 'a page should hold at most limit items');
    assert.ok(page.next_cursor === null || typeof page.next_cursor === 'string');
    pages.push(page);
    cursor = page.next_cursor;
    assert.ok(cursor === null || !cursors.has(cursor), `paging repeats the cursor ${cursor}`);
    if (cursor !== null) cursors.add(cursor);
    assert.ok(pages.length <= MAX_PAGES, 'paging should end');
  } while (cursor !== null);
  return pages;
}

/** The items of every page of `path`, page by page (see allPages). */
export async function allPageItems<T>(
  server: TestServer,
  path: string,
  options: { limit: number; token?: string },
): Promise<T[][]> {
  return (await allPages<T>(server, path, options)).map((page) => page.items);
}
