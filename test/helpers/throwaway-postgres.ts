import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './loopback.js';

const run = promisify(execFile);

/**
 * A private PostgreSQL server that a test may stop and start at will: its own cluster made
 * with `initdb` in a temporary directory, on its own free port, with trust authentication. It
 * never touches the machine's shared server. Tests run as root and `initdb` refuses root, so
 * the binaries run as the `postgres` OS user, which owns the directory.
 */
export class ThrowawayPostgres {
  private removed = false;
  private readonly cleanUpOnExit = () => this.removeNow();

  private constructor(
    private readonly bin: string,
    readonly dir: string,
    readonly port: number,
  ) {}

  /** The connection string of the `postgres` database as the `postgres` superuser. */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  /** Creates the cluster and starts it. */
  static async create(): Promise<ThrowawayPostgres> {
    const bin = postgresBinaries();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pie-throwaway-pg-'));
    const server = new ThrowawayPostgres(bin, dir, await freePort());
    // Removed however the test ends, even when it throws before its own clean-up.
    process.once('exit', server.cleanUpOnExit);
    try {
      fs.chmodSync(dir, 0o700);
      await run('chown', ['postgres:postgres', dir]);
      await server.asPostgres('initdb', [
        '-D',
        server.dataDir,
        '-U',
        'postgres',
        '--auth=trust',
        '--no-sync',
        '-E',
        'UTF8',
      ]);
      await server.start();
      return server;
    } catch (error) {
      await server.remove();
      throw error;
    }
  }

  private get dataDir(): string {
    return path.join(this.dir, 'data');
  }

  /** Starts the server and waits until it accepts connections. */
  async start(): Promise<void> {
    const options = [
      `-p ${this.port}`,
      "-c listen_addresses='127.0.0.1'",
      // Its own socket directory, so it can never collide with the shared server's socket.
      `-k ${this.dir}`,
      '-c fsync=off',
      '-c max_connections=100',
    ].join(' ');
    await this.asPostgres('pg_ctl', [
      '-D',
      this.dataDir,
      '-l',
      path.join(this.dir, 'server.log'),
      '-o',
      options,
      '-w',
      '-t',
      '30',
      'start',
    ]);
  }

  /**
   * Stops the server: `fast` ends every session with an error (57P01) as an operator's stop
   * would; `immediate` stops at once, as a crash would.
   */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await this.asPostgres('pg_ctl', ['-D', this.dataDir, '-m', mode, '-w', '-t', '30', 'stop']);
  }

  /** Stops the server if it runs and deletes its directory. */
  async remove(): Promise<void> {
    if (this.removed) return;
    await this.stop('immediate').catch(() => undefined);
    this.removeNow();
  }

  /** The synchronous form, for process exit. */
  private removeNow(): void {
    if (this.removed) return;
    this.removed = true;
    process.off('exit', this.cleanUpOnExit);
    stopAtOnceSync(this.bin, this.dataDir, this.dir);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** The server's log, for a failing test's message. */
  log(): string {
    try {
      return fs.readFileSync(path.join(this.dir, 'server.log'), 'utf8');
    } catch {
      return '';
    }
  }

  private async asPostgres(name: string, args: string[]): Promise<void> {
    await runAsPostgres(this.bin, name, args, this.dir);
  }
}

/**
 * Runs one of the PostgreSQL binaries in `bin` as the `postgres` OS user, from `cwd` (a
 * directory that user may enter); a failure's message carries the binary's output.
 */
export async function runAsPostgres(
  bin: string,
  name: string,
  args: string[],
  cwd: string,
): Promise<void> {
  try {
    await run('runuser', ['-u', 'postgres', '--', path.join(bin, name), ...args], {
      cwd,
      timeout: 60_000,
    });
  } catch (error) {
    const { stderr, stdout } = error as { stderr?: string; stdout?: string };
    throw new Error(`${name} ${args.at(-1)} failed: ${stderr ?? ''}${stdout ?? ''}`, {
      cause: error,
    });
  }
}

/**
 * Stops the server of `dataDir` at once if it may be running: the synchronous form, for
 * process exit, where nothing asynchronous runs any more.
 */
export function stopAtOnceSync(bin: string, dataDir: string, cwd: string): void {
  if (!fs.existsSync(path.join(dataDir, 'postmaster.pid'))) return;
  spawnSync(
    'runuser',
    ['-u', 'postgres', '--', path.join(bin, 'pg_ctl'), '-D', dataDir, '-m', 'immediate', 'stop'],
    { cwd, stdio: 'ignore' },
  );
}

/** The newest installed PostgreSQL's bin directory (Debian's /usr/lib/postgresql/NN/bin). */
export function postgresBinaries(): string {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root)
    ? fs
        .readdirSync(root)
        .filter((entry) => fs.existsSync(path.join(root, entry, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions[0] === undefined) throw new Error(`no PostgreSQL binaries under ${root}`);
  return path.join(root, versions[0], 'bin');
}
