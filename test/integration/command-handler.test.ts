import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { deliverCommand } from '../../src/dispatch/handlers/command.handler.js';
import type { DeliveryOutcome, Envelope } from '../../src/domain/delivery.js';
import { createConcurrencyLimit } from '../../src/limits/concurrency-limit.js';
import { pollUntil, waitFor } from '../helpers/wait.js';

const DEMO_MODEL = fileURLToPath(
  new URL('../../examples/handlers/demo-model.mjs', import.meta.url),
);

function envelope(overrides: Partial<Envelope> = {}): Envelope {
  return {
    job_id: 'job-1',
    job_type: 'inference',
    attempt: 2,
    model_id: 'eta',
    model_version: '1.0.0',
    client_id: 'acme',
    domain_id: 'rail',
    service_id: 'svc-1',
    assignment_id: 'asg-1',
    assignment_key: 'default',
    config: { threshold: 0.5 },
    input: { stop: 'A' },
    features: { distance_km: 12.5 },
    trigger: null,
    deadline: new Date(Date.now() + 60_000).toISOString(),
    callback: { url: 'http://x/complete', heartbeat_url: 'http://x/heartbeat', token: 't' },
    ...overrides,
  };
}

/** Runs a Node script as the command handler. */
function runScript(
  script: string,
  options: { signal?: AbortSignal; maxOutputBytes?: number; cwd?: string; job?: Envelope } = {},
): Promise<DeliveryOutcome> {
  return deliverCommand(
    options.job ?? envelope(),
    { command: process.execPath, args: ['-e', script] },
    { signal: options.signal ?? new AbortController().signal },
    { maxOutputBytes: options.maxOutputBytes, cwd: options.cwd },
  );
}

const READ_STDIN = `let raw = ''; process.stdin.on('data', (c) => (raw += c));`;

/** Whether a process runs; a zombie waiting for a reaper (some containers lack one) is gone. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    assert.equal((error as NodeJS.ErrnoException).code, 'ESRCH');
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

/** Whether a script has written its pid to `pidFile` yet. */
function hasPid(pidFile: string): boolean {
  return fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8') !== '';
}

/** Starts a long-running script that writes its pid to a file, and waits for that file. */
async function startSleeper(signal: AbortSignal, options: { ignoreSigterm?: boolean } = {}) {
  const pidFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pie-cmd-')), 'pid');
  const script = [
    options.ignoreSigterm === true ? `process.on('SIGTERM', () => {});` : '',
    `require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(process.pid));`,
    `setInterval(() => {}, 1000);`,
  ].join('\n');
  const outcome = runScript(script, { signal });
  await waitFor('the sleeper to start', () => hasPid(pidFile), 5000, 25);
  return { pid: Number(fs.readFileSync(pidFile, 'utf8')), outcome };
}

describe('command handler', () => {
  it('succeeds with a JSON object on stdout as the output', async () => {
    const outcome = await runScript(`console.log(JSON.stringify({ prediction: { p: 0.9 } }))`);
    assert.deepEqual(outcome, {
      kind: 'finished',
      status: 'success',
      output: { prediction: { p: 0.9 } },
    });
  });

  it('keeps stdout that is not a JSON object as trimmed text', async () => {
    assert.deepEqual(await runScript(`console.log('  all good  ')`), {
      kind: 'finished',
      status: 'success',
      output: { stdout: 'all good' },
    });
    assert.deepEqual(await runScript(`console.log('[1, 2]')`), {
      kind: 'finished',
      status: 'success',
      output: { stdout: '[1, 2]' },
    });
    assert.deepEqual(await runScript(``), {
      kind: 'finished',
      status: 'success',
      output: { stdout: '' },
    });
  });

  it('passes the envelope on stdin and the job id and attempt in the environment', async () => {
    const job = envelope({ input: { text: 'héllo ✓', nested: { list: [1, 2] } } });
    const outcome = await runScript(
      `${READ_STDIN}
       process.stdin.on('end', () => console.log(JSON.stringify({
         envelope: JSON.parse(raw),
         env: { id: process.env.PIE_JOB_ID, attempt: process.env.PIE_JOB_ATTEMPT },
       })));`,
      { job },
    );
    assert.equal(outcome.kind, 'finished');
    assert.deepEqual(outcome.output, { envelope: job, env: { id: 'job-1', attempt: '2' } });
  });

  it('runs in the given working directory', async () => {
    const cwd = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'pie-cwd-')));
    const outcome = await runScript(`console.log(process.cwd())`, { cwd });
    assert.deepEqual(outcome, { kind: 'finished', status: 'success', output: { stdout: cwd } });
  });

  it('reads all of a large output, and does not wait for a grandchild holding the pipes', async () => {
    const large = await runScript(
      `process.stdout.write(JSON.stringify({ data: 'd'.repeat(900_000) }))`,
    );
    assert.equal(large.kind, 'finished');
    assert.equal((large.output as { data: string }).data.length, 900_000);

    const started = Date.now();
    const orphaned = await runScript(
      `require('child_process').spawn(process.execPath, ['-e', 'setTimeout(() => {}, 1500)'], { stdio: 'inherit' }).unref();
       console.log('{"ok": true}');`,
    );
    assert.deepEqual(orphaned, { kind: 'finished', status: 'success', output: { ok: true } });
    assert.ok(Date.now() - started < 1200, 'finished when the command exited');
  });

  it('fails a non-zero exit with the exit code and the last 2 KiB of stderr', async () => {
    const outcome = await runScript(
      `process.stderr.write('START' + 'x'.repeat(5000) + 'THE END'); process.exit(7);`,
    );
    assert.equal(outcome.kind, 'finished');
    assert.equal(outcome.status, 'failure');
    assert.equal(outcome.output, undefined);
    const error = outcome.error!;
    assert.equal(error.code, 'exit');
    assert.equal(error.exit_code, 7);
    assert.equal(error.signal, null);
    assert.match(error.message, /code 7/);
    const tail = error.stderr_tail as string;
    assert.equal(tail.length, 2048);
    assert.ok(tail.endsWith('THE END'));
    assert.ok(!tail.includes('START'));
  });

  it('fails a process killed by a signal, naming the signal', async () => {
    const outcome = await runScript(`process.kill(process.pid, 'SIGKILL')`);
    assert.equal(outcome.kind, 'finished');
    assert.equal(outcome.status, 'failure');
    assert.equal(outcome.error?.code, 'exit');
    assert.equal(outcome.error.exit_code, null);
    assert.equal(outcome.error.signal, 'SIGKILL');
  });

  it('fails the job when the command cannot be started', async () => {
    const outcome = await deliverCommand(
      envelope(),
      { command: 'pie-no-such-command-here' },
      { signal: new AbortController().signal },
      {},
    );
    assert.equal(outcome.kind, 'fail');
    assert.equal(outcome.error.code, 'spawn');
    assert.equal(outcome.error.errno, 'ENOENT');
    assert.match(outcome.error.message, /pie-no-such-command-here/);
  });

  it('kills the process at the deadline and fails the job with timeout', async () => {
    const controller = new AbortController();
    const { pid, outcome } = await startSleeper(controller.signal);
    assert.ok(isAlive(pid));
    controller.abort({ code: 'timeout', message: 'deadline passed' });
    const result = await outcome;
    assert.equal(result.kind, 'finished');
    assert.equal(result.status, 'failure');
    assert.equal(result.error?.code, 'timeout');
    assert.equal(result.error.signal, 'SIGTERM');
    assert.equal(isAlive(pid), false, 'the process is gone');
  });

  it('kills what the command started, too', async () => {
    const pidFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pie-cmd-')), 'pid');
    const controller = new AbortController();
    const outcome = runScript(
      `const child = require('child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
       require('fs').writeFileSync(${JSON.stringify(pidFile)}, String(child.pid));
       setInterval(() => {}, 1000);`,
      { signal: controller.signal },
    );
    await waitFor('the grandchild to start', () => hasPid(pidFile), 5000, 25);
    const grandchild = Number(fs.readFileSync(pidFile, 'utf8'));
    assert.ok(isAlive(grandchild));
    controller.abort({ code: 'timeout' });
    assert.equal((await outcome).kind, 'finished');
    assert.ok(await pollUntil(() => !isAlive(grandchild), 1000, 25), 'the grandchild is gone');
  });

  it('treats AbortSignal.timeout as a deadline too', async () => {
    const outcome = await runScript(`setInterval(() => {}, 1000)`, {
      signal: AbortSignal.timeout(200),
    });
    assert.equal(outcome.kind, 'finished');
    assert.equal(outcome.error?.code, 'timeout');
  });

  it('sends SIGKILL 2 s after SIGTERM to a process that ignores it', async () => {
    const controller = new AbortController();
    const { pid, outcome } = await startSleeper(controller.signal, { ignoreSigterm: true });
    const started = Date.now();
    controller.abort({ code: 'timeout', message: 'deadline passed' });
    const result = await outcome;
    assert.ok(Date.now() - started >= 1900, 'SIGTERM came first');
    assert.equal(result.kind, 'finished');
    assert.equal(result.error?.code, 'timeout');
    assert.equal(result.error.signal, 'SIGKILL');
    assert.equal(isAlive(pid), false);
  });

  it('asks for a retry when aborted for another reason', async () => {
    const controller = new AbortController();
    const { pid, outcome } = await startSleeper(controller.signal);
    controller.abort({ code: 'shutdown', message: 'the process is stopping' });
    const result = await outcome;
    assert.equal(result.kind, 'retry');
    assert.equal(result.error.code, 'aborted');
    assert.match(result.error.message, /the process is stopping/);
    assert.equal(isAlive(pid), false);

    // A plain abort() (a DOMException AbortError) is not a deadline either.
    const plain = new AbortController();
    const second = await startSleeper(plain.signal);
    plain.abort();
    assert.equal((await second.outcome).kind, 'retry');
  });

  it('does not start the command when the signal is already aborted', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pie-cmd-'));
    const marker = path.join(dir, 'ran');
    const outcome = await runScript(`require('fs').writeFileSync(${JSON.stringify(marker)}, '')`, {
      signal: AbortSignal.abort({ code: 'timeout' }),
    });
    assert.equal(outcome.kind, 'finished');
    assert.equal(outcome.error?.code, 'timeout');
    assert.equal(fs.existsSync(marker), false);
  });

  it('fails output beyond maxOutputBytes and stops a process that keeps writing', async () => {
    const atCap = await runScript(`process.stdout.write('y'.repeat(1000))`, {
      maxOutputBytes: 1000,
    });
    assert.equal(atCap.kind, 'finished');
    assert.equal(atCap.status, 'success');

    const over = await runScript(`process.stdout.write('y'.repeat(1001))`, {
      maxOutputBytes: 1000,
    });
    assert.equal(over.kind, 'finished');
    assert.equal(over.status, 'failure');
    assert.equal(over.error?.code, 'output_too_large');
    assert.equal(over.error.max_output_bytes, 1000);

    const endless = await runScript(
      `const chunk = 'z'.repeat(65536); const write = () => process.stdout.write(chunk, write); write();`,
    );
    assert.equal(endless.kind, 'finished');
    assert.equal(endless.error?.code, 'output_too_large', 'the default cap is 1 MiB');
  });

  it('runs the demo model: inference is deterministic, training trains, input.fail fails', async () => {
    const demo = (job: Envelope) =>
      deliverCommand(
        job,
        { command: process.execPath, args: [DEMO_MODEL] },
        { signal: new AbortController().signal },
        {},
      );

    const first = await demo(envelope());
    assert.equal(first.kind, 'finished');
    assert.equal(first.status, 'success');
    const output = first.output as { prediction: { delay_minutes: number } };
    assert.equal(typeof output.prediction.delay_minutes, 'number');
    assert.deepEqual(output, {
      prediction: output.prediction,
      model: 'eta@1.0.0',
      job_type: 'inference',
    });
    assert.deepEqual(await demo(envelope({ job_id: 'job-2' })), first, 'same input, same answer');
    const other = await demo(envelope({ features: { distance_km: 99 } }));
    assert.notDeepEqual(other, first, 'the features matter');

    const training = await demo(envelope({ job_type: 'training', input: { samples: [1, 2, 3] } }));
    assert.deepEqual(training, {
      kind: 'finished',
      status: 'success',
      output: { trained: true, model: 'eta@1.0.0', job_type: 'training', samples: 3 },
    });

    const failed = await demo(envelope({ input: { fail: true } }));
    assert.equal(failed.kind, 'finished');
    assert.equal(failed.status, 'failure');
    assert.equal(failed.error?.exit_code, 3);
    assert.match(failed.error.stderr_tail as string, /failed on purpose/);
  });
});

describe('createConcurrencyLimit', () => {
  it('never runs more than the limit at once and keeps every result', async () => {
    const limit = createConcurrencyLimit(2);
    let active = 0;
    let peak = 0;
    const results = await Promise.all(
      [30, 10, 20, 5, 15, 1].map((ms, index) =>
        limit.run(async () => {
          active += 1;
          peak = Math.max(peak, active);
          assert.ok(limit.active <= 2);
          await delay(ms);
          active -= 1;
          return index;
        }),
      ),
    );
    assert.deepEqual(results, [0, 1, 2, 3, 4, 5]);
    assert.equal(peak, 2);
    assert.equal(limit.active, 0);
    assert.equal(limit.pending, 0);
  });

  it('frees the slot when a task throws', async () => {
    const limit = createConcurrencyLimit(1);
    await assert.rejects(
      limit.run(() => Promise.reject(new Error('boom'))),
      /boom/,
    );
    assert.equal(await limit.run(() => Promise.resolve('next')), 'next');
    assert.equal(limit.active, 0);
  });

  it('refuses a limit that is not a positive integer', () => {
    assert.throws(() => createConcurrencyLimit(0), RangeError);
    assert.throws(() => createConcurrencyLimit(1.5), RangeError);
  });
});
