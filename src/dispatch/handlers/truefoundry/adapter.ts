import type { FollowedRun, HandlerAdapter } from '../handler-adapter.js';
import type { TrueFoundryOptions } from './control-plane.js';
import { readTrueFoundryRun } from './run-status.js';
import { terminateTrueFoundryRun } from './terminate.js';
import { triggerTrueFoundryRun } from './trigger.js';

/**
 * The truefoundry kind's adapter: delivering triggers a run (its name becomes the job's
 * reference), and following reads that run, so that a run that ended FAILED or TERMINATED
 * without a completion fails the attempt. A cancel terminates the run, when one was started.
 */
export function createTrueFoundryAdapter(
  options: TrueFoundryOptions,
): HandlerAdapter<'truefoundry'> {
  return {
    type: 'truefoundry',
    deliver: (envelope, handler, ctx) => triggerTrueFoundryRun(envelope, handler, ctx, options),
    cancel: async (handler, notice, signal) =>
      notice.handler_ref === null
        ? undefined
        : terminateTrueFoundryRun(handler, notice.handler_ref, signal, options),
    async follow(handler, reference, signal): Promise<FollowedRun> {
      const run = await readTrueFoundryRun(handler, reference, {
        ...options,
        ...(signal !== undefined && { signal }),
      });
      switch (run.state) {
        case 'unknown':
          return { state: 'unknown', error: run.error };
        case 'failed':
          return {
            state: 'failed',
            error: {
              code: 'truefoundry_run_failed',
              message: `TrueFoundry run ${reference} ended ${run.status} without a completion`,
              status: run.status,
            },
          };
        case 'active':
        case 'succeeded':
          return { state: run.state };
      }
    },
  };
}
