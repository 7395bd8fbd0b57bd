import os from 'node:os';
import { parseArgs } from 'node:util';
import { ConfigError, type Config } from '../../config/config.js';

/** The command line of `pie worker`. */

export interface WorkerOptions {
  url: string;
  model: string;
  version: string;
  workerId: string;
  concurrency: number;
  leaseS: number;
  waitMs: number;
  once: boolean;
  command: string;
  args: string[];
}

type Env = Record<string, string | undefined>;

/** Reads the command line; throws ConfigError with a message naming the bad option. */
export function parseWorkerArgs(
  argv: string[],
  env: Env,
  server: Pick<Config, 'host' | 'port'>,
): WorkerOptions {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      model: { type: 'string' },
      version: { type: 'string' },
      url: { type: 'string' },
      'worker-id': { type: 'string' },
      concurrency: { type: 'string', default: '1' },
      lease: { type: 'string', default: '60' },
      wait: { type: 'string', default: '20000' },
      once: { type: 'boolean', default: false },
    },
  });
  const [command, ...args] = positionals;
  if (values.model === undefined || values.model === '')
    throw new ConfigError('--model is required');
  if (values.version === undefined || values.version === '') {
    throw new ConfigError('--version is required');
  }
  if (command === undefined || command === '') {
    throw new ConfigError('give the command to run per job after "--", e.g. -- node model.mjs');
  }
  const url = values.url ?? nonEmpty(env['PIE_URL']) ?? defaultUrl(server);
  try {
    new URL(url);
  } catch {
    throw new ConfigError(`--url must be an absolute URL, got "${url}"`);
  }
  return {
    url: url.replace(/\/+$/, ''),
    model: values.model,
    version: values.version,
    workerId: values['worker-id'] ?? `${os.hostname()}-${process.pid}`,
    concurrency: integerOption('--concurrency', values.concurrency, 1, 100),
    leaseS: integerOption('--lease', values.lease, 5, 3600),
    waitMs: integerOption('--wait', values.wait, 0, 30_000),
    once: values.once,
    command,
    args,
  };
}

export function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === '' ? undefined : trimmed;
}

function defaultUrl({ host, port }: Pick<Config, 'host' | 'port'>): string {
  // A server listening on every address is reachable on loopback.
  const reachable = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}

function integerOption(name: string, raw: string, min: number, max: number): number {
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}
