import type { JobError } from '../../../domain/delivery.js';
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
 * The status of a TrueFoundry run PIE triggered, read so that a run that ends FAILED or
 * TERMINATED without a completion fails its job (the dispatcher follows such runs).
 */

export interface TrueFoundryReadOptions extends TrueFoundryOptions {
  /** Aborts the read (e.g. on shutdown). */
  signal?: AbortSignal;
  /**
   * The job's application id, which the run-status route needs. Defaults to
   * `handler.application_id`; a handler configured by `deployment_id` alone must supply it.
   */
  applicationId?: string;
}

export type TrueFoundryRunState =
  | {
      state: 'active' | 'succeeded' | 'failed';
      /** TrueFoundry's status, as it reported it (FAILED, TERMINATED, ...). */
      status: string;
      /** The run's `error` and `exitCode`, when TrueFoundry reported them. */
      error?: string;
      exitCode?: number;
      /** The run's deployment, which terminating it needs (`data.deploymentId`). */
      deploymentId?: string;
    }
  | { state: 'unknown'; error: JobError };

const SUCCEEDED_STATUSES = new Set(['FINISHED', 'SUCCEEDED']);
const FAILED_STATUSES = new Set(['FAILED', 'TERMINATED']);

/** Reads the status of a run `triggerTrueFoundryRun` started (its `reference`). */
export async function readTrueFoundryRun(
  handler: TrueFoundryHandler,
  jobRunName: string,
  options: TrueFoundryReadOptions,
): Promise<TrueFoundryRunState> {
  const token = readToken(handler, options.env);
  if (typeof token !== 'string') return { state: 'unknown', error: token };
  const jobId = options.applicationId ?? handler.application_id;
  if (jobId === undefined || jobId === '') {
    return {
      state: 'unknown',
      error: {
        code: 'application_id_required',
        message:
          "TrueFoundry's run-status route is keyed by the job's application id, which this handler (configured by deployment_id) does not name",
      },
    };
  }
  const path = `api/svc/v1/jobs/${encodeURIComponent(jobId)}/runs/${encodeURIComponent(jobRunName)}`;
  const url = endpoint(handler.base_url, path);
  if (url === undefined) return { state: 'unknown', error: invalidBaseUrl(handler) };
  const signal = options.signal ?? new AbortController().signal;
  if (signal.aborted) return { state: 'unknown', error: abortedError(signal.reason) };

  const answer = await send(url, { method: 'GET' }, token, signal, options);
  if (answer.kind === 'error') {
    return {
      state: 'unknown',
      error: answer.reason === 'aborted' ? abortedError(signal.reason) : answer.error,
    };
  }
  const { response, text } = answer;
  if (response.status < 200 || response.status >= 300) {
    const error = httpError(response, text, token, handler, 'the run-status read');
    if (response.status === 404) error.code = 'run_not_found';
    return { state: 'unknown', error };
  }
  const data = field(parseJson(text), 'data');
  const status = field(data, 'status');
  if (typeof status !== 'string' || status === '') {
    return {
      state: 'unknown',
      error: {
        code: 'bad_response',
        message: `TrueFoundry answered the run-status read with HTTP ${response.status} but no data.status`,
        status: response.status,
        body: excerpt(text, token),
      },
    };
  }
  const runError = field(data, 'error');
  const exitCode = field(data, 'exitCode');
  const deploymentId = field(data, 'deploymentId');
  return {
    state: trueFoundryRunState(status),
    status,
    ...(typeof runError === 'string' && runError !== '' && { error: runError }),
    ...(typeof exitCode === 'number' && { exitCode }),
    ...(typeof deploymentId === 'string' && deploymentId !== '' && { deploymentId }),
  };
}

/**
 * FINISHED (and SUCCEEDED) → succeeded, FAILED and TERMINATED → failed; everything else
 * (CREATED, SCHEDULED, RUNNING, TERMINATION_REQUESTED, TERMINATING, UNKNOWN, and statuses
 * TrueFoundry may add) → active: the run may still end, and the job's deadline bounds the wait.
 */
export function trueFoundryRunState(status: string): 'active' | 'succeeded' | 'failed' {
  const normalized = status.trim().toUpperCase();
  if (SUCCEEDED_STATUSES.has(normalized)) return 'succeeded';
  if (FAILED_STATUSES.has(normalized)) return 'failed';
  return 'active';
}
