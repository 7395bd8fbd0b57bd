import type { HandlerAdapter } from './handler-adapter.js';

/**
 * The `{"type": "worker"}` handler: pull workers claim such jobs themselves, so the dispatcher
 * never claims them. It meets one only when a job it claimed for push delivery belongs to a
 * version whose handler was switched to pull workers meanwhile: the attempt is retried at once,
 * and the retry is for a worker to take.
 */
export function createWorkerAdapter(): HandlerAdapter<'worker'> {
  return {
    type: 'worker',
    deliver: () =>
      Promise.resolve({
        kind: 'retry',
        error: { code: 'handler_changed', message: 'the version now uses pull workers' },
        retryAfterMs: 0,
      }),
  };
}
