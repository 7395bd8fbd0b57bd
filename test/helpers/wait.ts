/**
 * Waiting in tests for what happens on its own time: a delivery, a retry, a process exiting, a
 * timer firing. Each polls a condition rather than sleeping a fixed time, so a fast machine
 * does not wait and a slow one does not fail.
 */

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Polls `probe` every `intervalMs` until it returns a value other than undefined, and resolves
 * to that value; throws `timed out waiting for <what>` once `timeoutMs` has passed.
 */
export async function waitForValue<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
  intervalMs = 20,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Resolves once `condition` holds, polling; throws `timed out waiting for <what>` after `timeoutMs`. */
export async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  intervalMs = 20,
): Promise<void> {
  await waitForValue(
    what,
    async () => ((await condition()) ? true : undefined),
    timeoutMs,
    intervalMs,
  );
}

/**
 * Polls `condition` until it holds or `timeoutMs` has passed, and resolves to whether it held,
 * for a test that goes on to assert what it waited for in its own words.
 */
export async function pollUntil(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  intervalMs = 20,
): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await condition()) return true;
    if (Date.now() > end) return false;
    await sleep(intervalMs);
  }
}
