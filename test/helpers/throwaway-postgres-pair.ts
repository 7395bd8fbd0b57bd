import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort } from './loopback.js';
import { postgresBinaries, runAsPostgres, stopAtOnceSync } from './throwaway-postgres.js';
import { waitFor } from './wait.js';

const run = promisify(execFile);

export type PairMember = 'primary' | 'standby';

/** The name the standby gives the primary, which `synchronous_standby_names` refers to. */
const STANDBY_NAME = 'pie_standby';

/** How long the pair may take to reach a state it waits for (streaming, sync, promoted). */
const SETTLE_MS = 30_000;

/**
 * A private PostgreSQL primary and its streaming-replication standby, for failover and
 * read-replica tests: like ThrowawayPostgres, clusters of its own in a temporary directory, on
 * free ports, with trust authentication, run as the `postgres` OS user, never the machine's
 * shared server. Unlike it, fsync stays on and commits are flushed (synchronous_commit = on),
 * to the standby as well when the pair is synchronous: a failover test checks that acknowledged
 * commits survive the primary's crash.
 */
export class ThrowawayPostgresPair {
  private removed = false;
  private readonly cleanUpOnExit = () => this.removeNow();

  private constructor(
    private readonly bin: string,
    readonly dir: string,
    private readonly ports: Record<PairMember, number>,
  ) {}

  get primaryPort(): number {
    return this.ports.primary;
  }

  get standbyPort(): number {
    return this.ports.standby;
  }

  get primaryUrl(): string {
    return this.url('primary');
  }

  get standbyUrl(): string {
    return this.url('standby');
  }

  /** Both servers in libpq's multi-host form: whichever accepts writes, the primary first. */
  get failoverUrl(): string {
    return (
      `postgres://postgres@127.0.0.1:${this.primaryPort},127.0.0.1:${this.standbyPort}` +
      '/postgres?target_session_attrs=read-write'
    );
  }

  /**
   * Creates the primary, copies it into the standby with pg_basebackup and starts both; resolves
   * once the primary lists the standby as streaming, with sync_state 'sync' or 'async'.
   */
  static async create(options: {
    synchronous: boolean;
    statementStatistics?: boolean;
  }): Promise<ThrowawayPostgresPair> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pie-throwaway-pg-pair-'));
    const pair = new ThrowawayPostgresPair(postgresBinaries(), dir, {
      primary: await freePort(),
      standby: await freePort(),
    });
    // Removed however the test ends, even when it throws before its own clean-up.
    process.once('exit', pair.cleanUpOnExit);
    try {
      fs.chmodSync(dir, 0o700);
      // Each server its own socket directory, so neither collides with the shared server's.
      fs.mkdirSync(pair.socketDir('primary'));
      fs.mkdirSync(pair.socketDir('standby'));
      await run('chown', ['-R', 'postgres:postgres', dir]);
      await pair.asPostgres('initdb', [
        ...['-D', pair.dataDir('primary'), '-U', 'postgres', '--auth=trust', '--no-sync'],
        ...['-E', 'UTF8'],
      ]);
      pair.configurePrimary(options.statementStatistics === true);
      await pair.start('primary');
      if (options.statementStatistics) {
        await pair.query('primary', 'create extension pg_stat_statements');
      }
      await pair.asPostgres('pg_basebackup', [
        ...['-h', '127.0.0.1', '-p', String(pair.primaryPort), '-U', 'postgres'],
        // -R writes primary_conninfo, application_name included, and standby.signal.
        ...['-d', `application_name=${STANDBY_NAME}`, '-D', pair.dataDir('standby'), '-R'],
        // A fast checkpoint rather than a spread one; no fsync of the copy, as initdb's.
        ...['-X', 'stream', '-c', 'fast', '--no-sync'],
      ]);
      await pair.start('standby');
      if (options.synchronous) {
        // Set after the copy, so the standby does not inherit it: once promoted it has no
        // standby of its own, and every commit would wait for one forever.
        await pair.query(
          'primary',
          `alter system set synchronous_standby_names = '${STANDBY_NAME}'`,
        );
        await pair.query('primary', 'select pg_reload_conf()');
      }
      await pair.waitForSyncState(options.synchronous ? 'sync' : 'async');
      return pair;
    } catch (error) {
      const logs = `primary log:\n${pair.log('primary')}\nstandby log:\n${pair.log('standby')}`;
      await pair.remove();
      throw new Error(`${(error as Error).message}\n${logs}`, { cause: error });
    }
  }

  /**
   * A crash of the primary's machine: its postmaster and every backend, walsender and worker
   * killed at once (killing the postmaster alone leaves its children running a moment, and a
   * backend could still commit). Resolves once its port refuses connections.
   */
  async killPrimary(): Promise<void> {
    const pidFile = path.join(this.dataDir('primary'), 'postmaster.pid');
    const lines = fs.readFileSync(pidFile, 'utf8').split('\n');
    const postmaster = Number(lines[0]);
    // Stopped first, so it forks no new child while its children are listed.
    process.kill(postmaster, 'SIGSTOP');
    for (const pid of [postmaster, ...childrenOf(postmaster)]) killIfAlive(pid);
    await waitFor(
      'the killed primary to refuse connections',
      () => refusesConnections(this.primaryPort),
      SETTLE_MS,
    );
    // What a clean stop would have removed: the shared memory segment, lest every run leak one,
    // and the pid file, lest a later `pg_ctl stop` signal whatever process reuses the pid.
    const shmid = lines[6]?.trim().split(/\s+/)[1];
    if (shmid !== undefined) await run('ipcrm', ['-m', shmid]).catch(() => undefined);
    fs.rmSync(pidFile, { force: true });
  }

  /** Promotes the standby; resolves once it accepts writes. */
  async promoteStandby(): Promise<void> {
    await this.asPostgres('pg_ctl', ['-D', this.dataDir('standby'), '-w', '-t', '30', 'promote']);
    await waitFor(
      'the promoted standby to leave recovery',
      async () => (await this.query('standby', 'select pg_is_in_recovery() as r'))[0]?.r === false,
      SETTLE_MS,
    );
  }

  /** Resolves once the standby has replayed everything the primary has written so far. */
  async waitForStandbyReplay(): Promise<void> {
    const [written] = await this.query('primary', 'select pg_current_wal_lsn()::text as lsn');
    const caughtUp = `select pg_last_wal_replay_lsn() >= '${String(written?.lsn)}'::pg_lsn as done`;
    await waitFor(
      'the standby to replay the primary',
      async () => (await this.query('standby', caughtUp))[0]?.done === true,
      SETTLE_MS,
    );
  }

  /** Runs `sql` on one server over a connection of its own, closed afterwards. */
  async query(which: PairMember, sql: string): Promise<Record<string, unknown>[]> {
    const client = new pg.Client({ connectionString: this.url(which) });
    // A server killed mid-query also emits 'error'; the query's rejection already reports it.
    client.on('error', () => undefined);
    await client.connect();
    try {
      return (await client.query(sql)).rows as Record<string, unknown>[];
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** A server's log, for a failing test's message. */
  log(which: PairMember): string {
    try {
      return fs.readFileSync(this.logFile(which), 'utf8');
    } catch {
      return '';
    }
  }

  /** Stops both servers if they run and deletes their directory. */
  async remove(): Promise<void> {
    if (this.removed) return;
    const stop = (which: PairMember) =>
      this.asPostgres('pg_ctl', ['-D', this.dataDir(which), '-m', 'immediate', '-w', 'stop']);
    await Promise.all([stop('primary').catch(() => {}), stop('standby').catch(() => {})]);
    this.removeNow();
  }

  /** The synchronous form, for process exit. */
  private removeNow(): void {
    if (this.removed) return;
    this.removed = true;
    process.off('exit', this.cleanUpOnExit);
    stopAtOnceSync(this.bin, this.dataDir('primary'), this.dir);
    stopAtOnceSync(this.bin, this.dataDir('standby'), this.dir);
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * Settings both servers need, written before the standby copies the primary's directory.
   * wal_level, max_wal_senders and hot_standby are PostgreSQL 15's defaults, stated so the
   * pair does not depend on them; likewise initdb's trust line for replication.
   */
  private configurePrimary(statementStatistics: boolean): void {
    const settings = [
      'wal_level = replica',
      'max_wal_senders = 5',
      'hot_standby = on',
      'synchronous_commit = on',
      'max_connections = 100',
      ...(statementStatistics ? ["shared_preload_libraries = 'pg_stat_statements'"] : []),
    ];
    const dataDir = this.dataDir('primary');
    fs.appendFileSync(path.join(dataDir, 'postgresql.conf'), `\n${settings.join('\n')}\n`);
    fs.appendFileSync(
      path.join(dataDir, 'pg_hba.conf'),
      'host replication postgres 127.0.0.1/32 trust\n',
    );
  }

  private async start(which: PairMember): Promise<void> {
    const options = [
      `-p ${this.ports[which]}`,
      "-c listen_addresses='127.0.0.1'",
      `-k ${this.socketDir(which)}`,
    ].join(' ');
    await this.asPostgres('pg_ctl', [
      ...['-D', this.dataDir(which), '-l', this.logFile(which), '-o', options],
      ...['-w', '-t', '30', 'start'],
    ]);
  }

  private async waitForSyncState(syncState: 'sync' | 'async'): Promise<void> {
    const sql =
      'select state, sync_state from pg_stat_replication ' +
      `where application_name = '${STANDBY_NAME}'`;
    await waitFor(
      `the standby to stream with sync_state '${syncState}'`,
      async () => {
        const [standby] = await this.query('primary', sql);
        return standby?.state === 'streaming' && standby.sync_state === syncState;
      },
      SETTLE_MS,
      50,
    );
  }

  private url(which: PairMember): string {
    return `postgres://postgres@127.0.0.1:${this.ports[which]}/postgres`;
  }

  private dataDir(which: PairMember): string {
    return path.join(this.dir, which);
  }

  private socketDir(which: PairMember): string {
    return path.join(this.dir, `${which}-socket`);
  }

  private logFile(which: PairMember): string {
    return path.join(this.dir, `${which}.log`);
  }

  private async asPostgres(name: string, args: string[]): Promise<void> {
    await runAsPostgres(this.bin, name, args, this.dir);
  }
}

/** The processes whose parent is `pid`, read from /proc. */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // it ended while the list was read
    }
    // The command name, in parentheses, may hold spaces: the state and ppid follow the last ')'.
    const [, parent] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(parent) === pid) children.push(Number(entry));
  }
  return children;
}

function killIfAlive(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/** Whether a connection to `port` on 127.0.0.1 is refused (rather than accepted, or slow). */
function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}
