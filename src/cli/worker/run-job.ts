import { deliverCommand } from '../../dispatch/handlers/command.handler.js';
import type { DeliveryOutcome, Envelope, JobError } from '../../domain/delivery.js';
import type { WorkerOptions } from './args.js';
import { BACKOFF_MAX_MS, BACKOFF_MIN_MS, sleep } from './backoff.js';
import { messageFromBody, messageOf, postCallback, readJson } from './http-helpers.js';
import { log } from './log.js';

/** Runs one job: the command, heartbeats while it runs, then the completion. */
export async function runJob(
  envelope: Envelope,
  options: WorkerOptions,
  force: AbortSignal | undefined,
): Promise<void> {
  const started = Date.now();
  const job = new AbortController();
  const deadlineMs = Date.parse(envelope.deadline) - Date.now();
  const deadline = setTimeout(
    () => job.abort({ code: 'timeout', message: 'the job passed its deadline' }),
    Number.isFinite(deadlineMs) ? Math.max(0, Math.min(deadlineMs, 2 ** 31 - 1)) : 2 ** 31 - 1,
  );
  const onForce = () => job.abort({ code: 'shutdown', message: 'the worker is stopping' });
  if (force?.aborted === true) onForce();
  else force?.addEventListener('abort', onForce, { once: true });
  const heartbeats = setInterval(
    () => void heartbeat(envelope, options.leaseS, job),
    (options.leaseS * 1000) / 3,
  );

  let outcome: DeliveryOutcome;
  try {
    outcome = await deliverCommand(
      envelope,
      { command: options.command, args: options.args },
      { signal: job.signal },
    );
  } finally {
    clearTimeout(deadline);
    clearInterval(heartbeats);
    force?.removeEventListener('abort', onForce);
  }

  const label = `job ${envelope.job_id} attempt ${envelope.attempt}`;
  const took = `${((Date.now() - started) / 1000).toFixed(1)}s`;
  const result = completionOf(outcome);
  if (result === undefined) {
    const why = outcome.kind === 'retry' ? outcome.error.message : outcome.kind;
    log(`${label}: stopped after ${took}, not reported (${why}); its lease decides what next`);
    return;
  }
  const reported = await complete(envelope, result);
  const summary =
    result.status === 'success'
      ? 'success'
      : `failure (${result.error?.code ?? 'error'}: ${result.error?.message ?? ''})`;
  log(`${label}: ${summary} in ${took}${reported ? '' : '; the completion was not accepted'}`);
}

interface Completion {
  status: 'success' | 'failure';
  output?: unknown;
  error?: JobError;
}

/** What to report for an outcome; undefined when the job should be left to its lease. */
function completionOf(outcome: DeliveryOutcome): Completion | undefined {
  switch (outcome.kind) {
    case 'finished':
      return { status: outcome.status, output: outcome.output, error: outcome.error };
    case 'fail':
      return { status: 'failure', error: outcome.error };
    case 'retry':
    case 'handed-over':
      return undefined;
  }
}

/**
 * Extends the lease. A 4xx (other than 408/429) means the attempt is no longer ours (cancelled,
 * lease lost, already final): the command is stopped and nothing is reported.
 */
async function heartbeat(envelope: Envelope, leaseS: number, job: AbortController) {
  try {
    const response = await postCallback(envelope.callback.heartbeat_url, envelope.callback.token, {
      attempt: envelope.attempt,
      lease_s: leaseS,
    });
    if (response.ok) return;
    const body = await readJson(response);
    const message = `${response.status} ${messageFromBody(body) ?? response.statusText}`;
    if (response.status >= 400 && response.status < 500 && ![408, 429].includes(response.status)) {
      log(`job ${envelope.job_id}: heartbeat refused (${message}); stopping the command`);
      job.abort({ code: 'lease_lost', message: `heartbeat refused: ${message}` });
    } else {
      log(`job ${envelope.job_id}: heartbeat failed (${message})`);
    }
  } catch (error) {
    log(`job ${envelope.job_id}: heartbeat failed (${messageOf(error)})`);
  }
}

const COMPLETE_TRIES = 6;

/** Posts the result, retrying network errors and 5xx with backoff; true when accepted. */
async function complete(envelope: Envelope, result: Completion): Promise<boolean> {
  const body = { ...result, attempt: envelope.attempt };
  let backoffMs = BACKOFF_MIN_MS;
  for (let attempt = 1; ; attempt++) {
    let problem: string;
    try {
      const response = await postCallback(envelope.callback.url, envelope.callback.token, body);
      if (response.ok) return true;
      const message = `${response.status} ${messageFromBody(await readJson(response)) ?? response.statusText}`;
      if (response.status < 500 && ![408, 429].includes(response.status)) {
        log(`job ${envelope.job_id}: completion refused (${message})`);
        return false;
      }
      problem = message;
    } catch (error) {
      problem = messageOf(error);
    }
    if (attempt === COMPLETE_TRIES) {
      log(`job ${envelope.job_id}: completion failed ${attempt} times (${problem}); giving up`);
      return false;
    }
    log(`job ${envelope.job_id}: completion failed (${problem}); retrying in ${backoffMs / 1000}s`);
    await sleep(backoffMs);
    backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
  }
}
