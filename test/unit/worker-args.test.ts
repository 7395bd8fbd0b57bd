import assert from 'node:assert/strict';
import os from 'node:os';
import { describe, it } from 'node:test';
import { parseWorkerArgs } from '../../src/cli/worker/args.js';
import { ConfigError } from '../../src/config/config.js';

const SERVER = { host: '127.0.0.1', port: 8080 };
const REQUIRED = ['--model', 'eta', '--version', '1.0.0'];

describe('pie worker arguments', () => {
  it('fills in the defaults and takes the command after --', () => {
    const options = parseWorkerArgs(
      [...REQUIRED, '--', 'node', 'model.mjs', '--verbose', '-x'],
      {},
      SERVER,
    );
    assert.deepEqual(options, {
      url: 'http://127.0.0.1:8080',
      model: 'eta',
      version: '1.0.0',
      workerId: `${os.hostname()}-${process.pid}`,
      concurrency: 1,
      leaseS: 60,
      waitMs: 20_000,
      once: false,
      command: 'node',
      args: ['model.mjs', '--verbose', '-x'],
    });
  });

  it('reads every option', () => {
    const options = parseWorkerArgs(
      [
        ...REQUIRED,
        '--url',
        'https://pie.example.com/',
        '--worker-id',
        'w-1',
        '--concurrency',
        '4',
        '--lease',
        '30',
        '--wait',
        '0',
        '--once',
        '--',
        'python',
      ],
      {},
      SERVER,
    );
    assert.equal(options.url, 'https://pie.example.com', 'no trailing slash');
    assert.equal(options.workerId, 'w-1');
    assert.equal(options.concurrency, 4);
    assert.equal(options.leaseS, 30);
    assert.equal(options.waitMs, 0);
    assert.equal(options.once, true);
    assert.equal(options.command, 'python');
    assert.deepEqual(options.args, []);
  });

  it('takes the URL from --url, then PIE_URL, then the configured host and port', () => {
    const args = [...REQUIRED, '--', 'cmd'];
    const env = { PIE_URL: 'http://pie.internal:9000' };
    assert.equal(parseWorkerArgs(args, env, SERVER).url, 'http://pie.internal:9000');
    assert.equal(
      parseWorkerArgs(['--url', 'http://other:1', ...args], env, SERVER).url,
      'http://other:1',
    );
    assert.equal(parseWorkerArgs(args, { PIE_URL: ' ' }, SERVER).url, 'http://127.0.0.1:8080');
    assert.equal(
      parseWorkerArgs(args, {}, { host: '0.0.0.0', port: 9090 }).url,
      'http://127.0.0.1:9090',
      'a wildcard listen address is reached on loopback',
    );
    assert.equal(parseWorkerArgs(args, {}, { host: '::1', port: 80 }).url, 'http://[::1]:80');
  });

  it('refuses missing and out-of-range options with a message naming them', () => {
    const refuses = (args: string[], pattern: RegExp) =>
      assert.throws(
        () => parseWorkerArgs(args, {}, SERVER),
        (error: unknown) => error instanceof ConfigError && pattern.test(error.message),
      );
    refuses(['--version', '1', '--', 'cmd'], /--model is required/);
    refuses(['--model', 'eta', '--', 'cmd'], /--version is required/);
    refuses(REQUIRED, /command to run/);
    refuses([...REQUIRED, '--concurrency', '0', '--', 'cmd'], /--concurrency must be .* 1 to 100/);
    refuses([...REQUIRED, '--concurrency', '101', '--', 'cmd'], /--concurrency/);
    refuses([...REQUIRED, '--lease', '4', '--', 'cmd'], /--lease must be .* 5 to 3600/);
    refuses([...REQUIRED, '--wait', '30001', '--', 'cmd'], /--wait must be .* 0 to 30000/);
    refuses([...REQUIRED, '--wait', '1.5', '--', 'cmd'], /--wait/);
    refuses([...REQUIRED, '--lease', '', '--', 'cmd'], /--lease/);
    refuses([...REQUIRED, '--url', 'not a url', '--', 'cmd'], /--url must be an absolute URL/);
  });

  it('rejects unknown options before the command', () => {
    assert.throws(() => parseWorkerArgs([...REQUIRED, '--bogus', '--', 'cmd'], {}, SERVER), {
      code: 'ERR_PARSE_ARGS_UNKNOWN_OPTION',
    });
  });
});
