import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BUILT_CLI, buildOnce, startFlags } from '../../scripts/npm-start.js';

/** A `pie serve` child process, as an operator would run it. */
export interface PieProcess {
  url: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  output: () => string;
}

/**
 * Starts `pie serve` with `env` and resolves once it prints its URL: through tsx, or with
 * `command` (such as `npm start`) when given.
 */
export function startPie(
  env: NodeJS.ProcessEnv,
  command: [string, ...string[]] = [
    process.execPath,
    '--import',
    'tsx',
    'src/cli/main.ts',
    'serve',
  ],
): Promise<PieProcess> {
  const child = spawn(command[0], command.slice(1), { env });
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`pie serve did not start:\n${output}`)),
      60_000,
    );
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /PIE is serving at (http:\/\/\S+)/.exec(output);
      if (match?.[1] !== undefined && output.includes('API reference')) {
        clearTimeout(timer);
        resolve({ url: match[1], child, exited, output: () => output });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`pie serve exited with ${code}:\n${output}`));
    });
  });
}

/**
 * Starts `pie serve` as `npm start` runs it (built to dist/, with its Node flags), for tests that
 * time it: the process users run, not the same code under tsx with a larger heap.
 */
export async function startBuiltPie(env: NodeJS.ProcessEnv): Promise<PieProcess> {
  await buildOnce();
  return startPie(env, [process.execPath, ...startFlags(), BUILT_CLI, 'serve']);
}

/** The environment for a child PIE: only what the test gives it, plus the basics. */
export function pieEnv(settings: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'], HOME: process.env['HOME'] };
  return { ...env, PIE_PORT: '0', PIE_LOG_LEVEL: 'warn', ...settings };
}

/** A `pie worker` child process, with its exit code and what it wrote to stderr. */
export interface PieWorker {
  child: ChildProcess;
  exited: Promise<number | null>;
  stderr: () => string;
}

/**
 * Starts `pie worker --url <url> <args>` from the repository root as an operator would run it,
 * with `PIE_TOKEN` set and none of the server's own secrets in its environment.
 */
export function startPieWorker(url: string, token: string, args: string[]): PieWorker {
  const env: NodeJS.ProcessEnv = { ...process.env, PIE_TOKEN: token };
  delete env['DATABASE_URL'];
  delete env['PIE_JWT_SECRET'];
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/cli/main.ts', 'worker', '--url', url, ...args],
    { cwd: REPOSITORY_ROOT, env },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { child, exited, stderr: () => stderr };
}

const REPOSITORY_ROOT = fileURLToPath(new URL('../..', import.meta.url));
