import { spawn, type ChildProcess } from 'node:child_process';

/** A `pie serve` child process, as an operator would run it. */
export interface PieProcess {
  url: string;
  child: ChildProcess;
  exited: Promise<number | null>;
  output: () => string;
}

/** Starts `pie serve` with `env` and resolves once it prints its URL. */
export function startPie(env: NodeJS.ProcessEnv): Promise<PieProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve'], { env });
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

/** The environment for a child PIE: only what the test gives it, plus the basics. */
export function pieEnv(settings: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env['PATH'], HOME: process.env['HOME'] };
  return { ...env, PIE_PORT: '0', PIE_LOG_LEVEL: 'warn', ...settings };
}
