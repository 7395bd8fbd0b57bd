import type { DeliveryOutcome, Envelope, JobError } from '../../../domain/delivery.js';
import type { DeliveryContext } from '../handler-adapter.js';
import { parseRetryAfter } from '../retry-after.js';
import {
  abortedError,
  endpoint,
  excerpt,
  field,
  httpError,
  invalidBaseUrl,
  parseJson,
  readToken,
  send,
  type TrueFoundryHandler,
  type TrueFoundryOptions,
} from './control-plane.js';

/**
 * Delivery to a `{"type": "truefoundry"}` handler: PIE triggers a run of the TrueFoundry job the
 * handler names and keeps the run's name as the job's reference; the job's code completes the
 * PIE job through the callback in the envelope (run-status.ts follows the run meanwhile).
 *
 * TrueFoundry job params are string key/values that fill the job's command template, so the
 * envelope travels as one string param, `pie_envelope`, holding the envelope's JSON: the job's
 * command reads it as `{{pie_envelope}}` (or from the matching environment variable).
 */

/** The `input.params` key that carries the envelope's JSON. */
export const TRUEFOUNDRY_ENVELOPE_PARAM = 'pie_envelope';

/** Triggers one run of the handler's job, the envelope in `input.params.pie_envelope`. */
export async function triggerTrueFoundryRun(
  envelope: Envelope,
  handler: TrueFoundryHandler,
  ctx: DeliveryContext,
  options: TrueFoundryOptions,
): Promise<DeliveryOutcome> {
  const token = readToken(handler, options.env);
  if (typeof token !== 'string') return { kind: 'fail', error: token };
  const target = jobTarget(handler);
  if ('code' in target) return { kind: 'fail', error: target };
  const url = endpoint(handler.base_url, 'api/svc/v1/jobs/trigger');
  if (url === undefined) return { kind: 'fail', error: invalidBaseUrl(handler) };
  if (ctx.signal.aborted) return abortedOutcome(ctx.signal.reason);

  const body = JSON.stringify({
    ...target,
    input: { params: { [TRUEFOUNDRY_ENVELOPE_PARAM]: JSON.stringify(envelope) } },
  });
  const answer = await send(url, { method: 'POST', body }, token, ctx.signal, options);
  if (answer.kind === 'error') {
    if (answer.reason === 'aborted') return abortedOutcome(ctx.signal.reason);
    if (answer.reason === 'refused') return { kind: 'fail', error: answer.error };
    return { kind: 'retry', error: answer.error };
  }

  const { response, text } = answer;
  const status = response.status;
  if (status >= 200 && status < 300) {
    const jobRunName = field(parseJson(text), 'jobRunName');
    if (typeof jobRunName === 'string' && jobRunName !== '') {
      return { kind: 'handed-over', reference: jobRunName };
    }
    return {
      kind: 'fail',
      error: {
        code: 'bad_response',
        message: `TrueFoundry answered the trigger with HTTP ${status} but no jobRunName`,
        status,
        body: excerpt(text, token),
      },
    };
  }
  const error = httpError(response, text, token, handler, 'the trigger');
  if (status === 429 || status >= 500) {
    const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'));
    return retryAfterMs === undefined
      ? { kind: 'retry', error }
      : { kind: 'retry', error, retryAfterMs };
  }
  return { kind: 'fail', error };
}

function jobTarget(
  handler: TrueFoundryHandler,
): { deploymentId: string } | { applicationId: string } | JobError {
  const { deployment_id: deploymentId, application_id: applicationId } = handler;
  if (deploymentId !== undefined && applicationId === undefined) return { deploymentId };
  if (applicationId !== undefined && deploymentId === undefined) return { applicationId };
  return {
    code: 'invalid_handler',
    message: 'a truefoundry handler needs exactly one of deployment_id and application_id',
  };
}

function abortedOutcome(reason: unknown): DeliveryOutcome {
  const error = abortedError(reason);
  return error.code === 'timeout' ? { kind: 'fail', error } : { kind: 'retry', error };
}
