import { spawn } from 'node:child_process';
import type { DeliveryOutcome, Envelope, JobError } from '../../domain/delivery.js';
import type { ConcurrencyLimit } from '../../limits/concurrency-limit.js';
import type { DeliveryContext, HandlerAdapter } from './handler-adapter.js';

/**
 * The `{"type": "command"}` handler: one local process per job, envelope JSON on stdin, output
 * JSON on stdout; exit 0 is success, anything else a failure carrying the exit code and the tail
 * of stderr. Used by the dispatcher and by `pie worker`.
 */

export interface CommandHandler {
  command: string;
  args?: string[];
}

export interface CommandOptions {
  cwd?: string;
  /** stdout beyond this fails the job with `output_too_large` (default 1 MiB). */
  maxOutputBytes?: number;
}

export const DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024;
const STDERR_TAIL_BYTES = 2048;
/** How long a process has between SIGTERM and SIGKILL. */
const KILL_GRACE_MS = 2000;
/** How long to wait, after the process exits, for output still in its pipes. */
const PIPE_DRAIN_MS = 200;

/** The command kind's adapter: runs each job's process once `limit` has a free slot. */
export function createCommandAdapter(limit: ConcurrencyLimit): HandlerAdapter<'command'> {
  return {
    type: 'command',
    deliver: (envelope, handler, ctx) =>
      limit.run(() => deliverCommand(envelope, handler, ctx, {})),
  };
}

export async function deliverCommand(
  envelope: Envelope,
  handler: CommandHandler,
  ctx: DeliveryContext,
  options: CommandOptions = {},
): Promise<DeliveryOutcome> {
  if (ctx.signal.aborted) return abortedOutcome(ctx.signal.reason, null, '');
  const maxOutputBytes = options.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;

  return new Promise<DeliveryOutcome>((resolve) => {
    const child = spawn(handler.command, handler.args ?? [], {
      cwd: options.cwd,
      env: {
        ...withoutSecrets(process.env),
        PIE_JOB_ID: envelope.job_id,
        PIE_JOB_ATTEMPT: String(envelope.attempt),
        // The envelope's trace context, also where OpenTelemetry's environment carrier looks.
        ...(envelope.traceparent === undefined ? {} : { TRACEPARENT: envelope.traceparent }),
      },
      stdio: ['pipe', 'pipe', 'pipe'],
      // Its own process group: a kill reaches whatever the command started (`sh -c ...`), and a
      // Ctrl-C at the terminal of `pie worker` does not kill jobs it means to let finish.
      detached: process.platform !== 'win32',
    });

    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    let stderrTail = Buffer.alloc(0);
    /** Why we killed the process, when we did; decides the outcome instead of the exit code. */
    let killedFor: { reason: 'abort'; abortReason: unknown } | { reason: 'output' } | undefined;
    let settled = false;

    const settle = (outcome: DeliveryOutcome) => {
      if (settled) return;
      settled = true;
      ctx.signal.removeEventListener('abort', onAbort);
      // Output from a leftover grandchild is not ours to read, nor to wait for.
      child.stdout.destroy();
      child.stderr.destroy();
      resolve(outcome);
    };

    const signalGroup = (signal: NodeJS.Signals) => {
      try {
        if (child.pid !== undefined && process.platform !== 'win32')
          process.kill(-child.pid, signal);
        else child.kill(signal);
      } catch {
        // ESRCH: the group is already gone.
      }
    };
    // The SIGKILL timer outlives the job on purpose: it also ends stragglers in the group that
    // ignored the SIGTERM after the command itself exited.
    const kill = () => {
      signalGroup('SIGTERM');
      setTimeout(() => signalGroup('SIGKILL'), KILL_GRACE_MS).unref();
    };

    const onAbort = () => {
      if (killedFor !== undefined) return;
      killedFor = { reason: 'abort', abortReason: ctx.signal.reason };
      kill();
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });

    child.stdout.on('data', (chunk: Buffer) => {
      if (killedFor !== undefined) return;
      stdoutBytes += chunk.length;
      if (stdoutBytes > maxOutputBytes) {
        killedFor = { reason: 'output' };
        stdout.length = 0;
        kill();
        return;
      }
      stdout.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderrTail = Buffer.concat([stderrTail, chunk]);
      if (stderrTail.length > STDERR_TAIL_BYTES) {
        stderrTail = stderrTail.subarray(stderrTail.length - STDERR_TAIL_BYTES);
      }
    });

    // A spawn failure (ENOENT, EACCES) emits 'error' and never 'exit'.
    child.on('error', (error: NodeJS.ErrnoException) => {
      if (child.pid !== undefined) return; // a kill() failure on a live process; 'exit' follows
      settle({
        kind: 'fail',
        error: {
          code: 'spawn',
          message: `could not start "${handler.command}": ${error.message}`,
          ...(error.code !== undefined && { errno: error.code }),
        },
      });
    });

    // 'exit', then the pipes' own 'close': waiting for the child's 'close' alone would let a
    // grandchild that inherited the pipes hold the job open, so that wait is capped.
    child.on('exit', (exitCode, signal) => {
      const finish = () => {
        const tail = decodeTail(stderrTail);
        if (killedFor?.reason === 'abort') {
          settle(abortedOutcome(killedFor.abortReason, signal, tail));
        } else if (killedFor?.reason === 'output') {
          settle({
            kind: 'finished',
            status: 'failure',
            error: {
              code: 'output_too_large',
              message: `the command wrote more than ${maxOutputBytes} bytes to stdout`,
              max_output_bytes: maxOutputBytes,
            },
          });
        } else if (exitCode === 0) {
          settle({ kind: 'finished', status: 'success', output: parseOutput(stdout) });
        } else {
          settle({
            kind: 'finished',
            status: 'failure',
            error: {
              code: 'exit',
              message:
                signal !== null
                  ? `the command was killed by ${signal}`
                  : `the command exited with code ${exitCode}`,
              exit_code: exitCode,
              signal,
              stderr_tail: tail,
            },
          });
        }
      };
      const pipes = [child.stdout, child.stderr].filter((pipe) => !pipe.closed);
      let open = pipes.length;
      if (open === 0) return finish();
      for (const pipe of pipes) {
        pipe.once('close', () => {
          open -= 1;
          if (open === 0) finish();
        });
      }
      setTimeout(finish, PIPE_DRAIN_MS).unref();
    });

    // The process may exit without reading stdin (EPIPE); that is its business, not an error.
    child.stdin.on('error', () => {});
    child.stdin.end(JSON.stringify(envelope));
  });
}

/**
 * The abort reason decides the outcome: a reason with `code === 'timeout'` (or a DOMException
 * named `TimeoutError`, as from `AbortSignal.timeout`) means the job's deadline passed, which
 * is final; any other reason (shutdown, a lost lease) means the job should run again. A cancel
 * also comes out as a retry, which the claim pump does not record: the job is final already.
 */
function abortedOutcome(
  reason: unknown,
  signal: string | null,
  stderrTail: string,
): DeliveryOutcome {
  const details = { ...(signal !== null && { signal }), stderr_tail: stderrTail };
  if (isDeadline(reason)) {
    return {
      kind: 'finished',
      status: 'failure',
      error: {
        code: 'timeout',
        message: 'the job passed its deadline; the command was stopped',
        ...details,
      },
    };
  }
  const why = reason instanceof Error ? reason.message : describeReason(reason);
  return {
    kind: 'retry',
    error: {
      code: 'aborted',
      message: `the command was stopped before it finished${why === '' ? '' : `: ${why}`}`,
      ...details,
    },
  };
}

function isDeadline(reason: unknown): boolean {
  if (typeof reason !== 'object' || reason === null) return false;
  return (
    (reason as { code?: unknown }).code === 'timeout' ||
    (reason as { name?: unknown }).name === 'TimeoutError'
  );
}

function describeReason(reason: unknown): string {
  if (typeof reason === 'string') return reason;
  if (typeof reason === 'object' && reason !== null) {
    const message = (reason as Partial<JobError>).message;
    if (typeof message === 'string') return message;
  }
  return '';
}

/** A JSON object on stdout is the output; anything else is kept as text. */
function parseOutput(chunks: Buffer[]): Record<string, unknown> {
  const text = Buffer.concat(chunks).toString('utf8').trim();
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
      return parsed as Record<string, unknown>;
    }
  } catch {
    // not JSON: fall through
  }
  return { stdout: text };
}

/** The last bytes of stderr, without a character cut in half at the start. */
function decodeTail(tail: Buffer): string {
  return tail.toString('utf8').replace(/^\uFFFD+/, '');
}

// A job's process needs nothing of PIE's own credentials (an OTLP collector's among them), nor a
// trace context PIE itself was started with: its own comes from the envelope.
const SECRET_VARIABLES = [
  'PIE_JWT_SECRET',
  'DATABASE_URL',
  'DATABASE_READ_URL',
  'PIE_TOKEN',
  'OTEL_EXPORTER_OTLP_HEADERS',
  'OTEL_EXPORTER_OTLP_TRACES_HEADERS',
  'TRACEPARENT',
  'TRACESTATE',
];

function withoutSecrets(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const copy = { ...env };
  for (const name of SECRET_VARIABLES) delete copy[name];
  return copy;
}
