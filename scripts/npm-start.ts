import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * PIE as `npm start` runs it, for the bench and the timed tests: they measure what users run.
 * Under tsx the process holds about 90 MB more (its compiled sources and source maps), and a
 * full collection of that heap paused a `pie serve` for 9 ms plus 15 ms of incremental marking,
 * in the middle of the fairness test's measurements.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The entry point `npm start` serves from, as an absolute path. */
export const BUILT_CLI = path.join(ROOT, 'dist', 'cli', 'main.js');

/**
 * The Node flags of package.json's `start` script (`... exec node <flags> dist/cli/main.js
 * serve`), read from it so that the two cannot drift apart.
 */
export function startFlags(): string[] {
  const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  const match = /exec node (.*?) ?dist\/cli\/main\.js serve/.exec(manifest.scripts['start'] ?? '');
  if (match === null)
    throw new Error('package.json: the start script no longer runs dist/cli/main.js');
  return (match[1] ?? '').split(' ').filter((flag) => flag !== '');
}

let built: Promise<void> | undefined;

/** Runs `npm run build` once per process (what `npm start` does first). */
export function buildOnce(): Promise<void> {
  built ??= new Promise((resolve, reject) => {
    const child = spawn('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`npm run build failed (exit ${code})`)),
    );
  });
  return built;
}
