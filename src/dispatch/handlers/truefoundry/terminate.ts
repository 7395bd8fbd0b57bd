import type { CancelOutcome } from '../handler-adapter.js';
import {
  endpoint,
  httpError,
  invalidBaseUrl,
  readToken,
  send,
  type TrueFoundryHandler,
  type TrueFoundryOptions,
} from './control-plane.js';
import { readTrueFoundryRun } from './run-status.js';

/**
 * Terminates a run PIE triggered, when its job was cancelled: `POST /api/svc/v1/jobs/terminate
 * ?deploymentId=...&jobRunName=...` (TrueFoundry's API reference, "Terminate Job", operation
 * `Job.terminateJob`; both query parameters are required). A handler configured by
 * `application_id` alone names no deployment, so the run is read first: its `data.deploymentId`
 * says which one started it.
 */
export async function terminateTrueFoundryRun(
  handler: TrueFoundryHandler,
  jobRunName: string,
  signal: AbortSignal,
  options: TrueFoundryOptions,
): Promise<CancelOutcome> {
  const token = readToken(handler, options.env);
  if (typeof token !== 'string') return { delivered: false, error: token };
  let deploymentId = handler.deployment_id;
  if (deploymentId === undefined) {
    const run = await readTrueFoundryRun(handler, jobRunName, { ...options, signal });
    if (run.state === 'unknown') return { delivered: false, error: run.error };
    deploymentId = run.deploymentId;
    if (deploymentId === undefined) {
      return {
        delivered: false,
        error: {
          code: 'deployment_unknown',
          message: `TrueFoundry's run ${jobRunName} names no deploymentId, which terminating it needs`,
        },
      };
    }
  }
  const url = endpoint(handler.base_url, 'api/svc/v1/jobs/terminate');
  if (url === undefined) return { delivered: false, error: invalidBaseUrl(handler) };
  url.searchParams.set('deploymentId', deploymentId);
  url.searchParams.set('jobRunName', jobRunName);

  const answer = await send(url, { method: 'POST' }, token, signal, options);
  if (answer.kind === 'error') return { delivered: false, error: answer.error };
  const { response, text } = answer;
  if (response.status >= 200 && response.status < 300) return { delivered: true };
  return {
    delivered: false,
    error: httpError(response, text, token, handler, 'the terminate call'),
  };
}
