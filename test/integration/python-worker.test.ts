import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

/**
 * The Python worker SDK (clients/python) runs its own suite, `python3 -m unittest`, which starts
 * a real `pie serve` itself: on the embedded database always, and on the PostgreSQL server named
 * by DATABASE_URL when it is set (in a fresh database it drops afterwards), as every integration
 * test here runs on both backends (test/helpers/backends.ts).
 */

const PYTHON_CLIENT = fileURLToPath(new URL('../../clients/python', import.meta.url));

const backends: { name: string; databaseUrl: string | undefined }[] = [
  { name: 'pglite', databaseUrl: undefined },
];
const serverUrl = process.env['DATABASE_URL'];
if (serverUrl !== undefined && serverUrl !== '') {
  backends.push({ name: 'postgres', databaseUrl: serverUrl });
}

describe('the Python worker SDK', () => {
  for (const backend of backends) {
    it(`passes its own tests [${backend.name}]`, { timeout: 240_000 }, async (t) => {
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        // The suite starts PIE with this very Node.js.
        NODE: process.execPath,
        PYTHONDONTWRITEBYTECODE: '1',
        PYTHONUNBUFFERED: '1',
      };
      delete env['DATABASE_URL'];
      if (backend.databaseUrl !== undefined) env['DATABASE_URL'] = backend.databaseUrl;
      const started = Date.now();
      const { code, output } = await run('python3', ['-m', 'unittest', '-v'], PYTHON_CLIENT, env);
      assert.equal(code, 0, `python3 -m unittest failed on ${backend.name}:\n${output}`);
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      t.diagnostic(`python3 -m unittest on ${backend.name}: ${seconds} s`);
    });
  }
});

function run(
  command: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}
