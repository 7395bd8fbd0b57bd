import os from 'node:os';
import { machineBusyMs, postmasterOf, processCpuMs, serverCpuMs } from '../cpu.js';
import { withClient } from '../setup.js';
import type { BenchContext } from '../types.js';
import { type Window, waitUntil } from './cycle-terms.js';

/**
 * What one side's window of the cycle cost, per job completed in it: the same readings for
 * every side, so that a ratio between two sides can be explained. A side whose rate falls
 * while its PostgreSQL CPU per job stays and the machine idles more was waiting (on commits,
 * on locks, on its own loops), not short of CPU. Only one side runs in a window, and nothing
 * else should run against the server meanwhile: its figures count every database on it.
 */
export interface WindowCost {
  /** CPU ms of the PostgreSQL server's processes; undefined when it is not on this machine. */
  postgresMsPerJob: number | undefined;
  /** CPU ms of the side's own server process (`pie serve`); undefined for the peers. */
  serviceMsPerJob: number | undefined;
  /** CPU ms of the bench's own process: PIE's producers and workers, or a peer's library. */
  clientsMsPerJob: number;
  /** CPU ms of the whole machine, every process: above the others, what else ran meanwhile. */
  machineMsPerJob: number;
  /** The share of the machine's cores left idle over the window, in percent. */
  idlePct: number;
  /** WAL written, in bytes (`pg_current_wal_lsn()`). */
  walBytesPerJob: number;
  /** WAL flushes to disk per second of the window (`pg_stat_wal.wal_sync`); undefined before 14. */
  walSyncsPerS: number | undefined;
}

interface Reading {
  postgres: number | undefined;
  service: number | undefined;
  clients: NodeJS.CpuUsage;
  machine: number;
  wal: { bytes: number; syncs: number | undefined };
}

const minus = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined ? undefined : a - b;

/**
 * Reads the CPU time of PostgreSQL, of `servicePid` (PIE's `pie serve`) when given, of this
 * process and of the machine, and the server's WAL position and flushes, at the window's start
 * and end. Resolves, once the window has ended and `jobsCounted` can say how many jobs it
 * completed, with the cost of each.
 */
export function costOverWindow(
  ctx: BenchContext,
  label: string,
  w: Window,
  jobsCounted: () => number | Promise<number>,
  servicePid?: number,
): Promise<WindowCost> {
  return withClient(ctx.databaseUrl, async (client) => {
    const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
    const postmaster = postmasterOf(rows[0]!.pid);
    if (postmaster === undefined)
      ctx.log(`cycle: ${label}: PostgreSQL is not on this machine: no CPU figure`);
    const wal = async () => {
      const lsn = await client.query<{ bytes: string }>(
        `select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text as bytes`,
      );
      const syncs = await client
        .query<{ syncs: string }>('select wal_sync::text as syncs from pg_stat_wal')
        .then(({ rows: [row] }) => Number(row!.syncs))
        .catch(() => undefined);
      return { bytes: Number(lsn.rows[0]!.bytes), syncs };
    };
    const read = async (): Promise<Reading> => ({
      postgres: postmaster === undefined ? undefined : serverCpuMs(postmaster),
      service: servicePid === undefined ? undefined : processCpuMs(servicePid),
      clients: process.cpuUsage(),
      machine: machineBusyMs(),
      wal: await wal(),
    });
    await waitUntil(w.from);
    const start = await read();
    await waitUntil(w.until);
    const end = await read();
    const jobs = await jobsCounted();
    const perJob = (amount: number) => (jobs === 0 ? 0 : Math.round((amount / jobs) * 1000) / 1000);
    const clients = process.cpuUsage(start.clients);
    const machineMs = end.machine - start.machine;
    const capacityMs = os.cpus().length * w.seconds * 1000;
    const postgresMs = minus(end.postgres, start.postgres);
    const serviceMs = minus(end.service, start.service);
    const syncs = minus(end.wal.syncs, start.wal.syncs);
    return {
      postgresMsPerJob: postgresMs === undefined ? undefined : perJob(postgresMs),
      serviceMsPerJob: serviceMs === undefined ? undefined : perJob(serviceMs),
      clientsMsPerJob: perJob((clients.user + clients.system) / 1000),
      machineMsPerJob: perJob(machineMs),
      idlePct: Math.max(0, Math.round((1 - machineMs / capacityMs) * 1000) / 10),
      walBytesPerJob: Math.round(perJob(end.wal.bytes - start.wal.bytes)),
      walSyncsPerS: syncs === undefined ? undefined : Math.round(syncs / w.seconds),
    };
  });
}

/** The cost line of a side in the bench's log. */
export function logCost(ctx: BenchContext, label: string, c: WindowCost): void {
  const service = c.serviceMsPerJob === undefined ? '' : `, its server ${c.serviceMsPerJob} ms`;
  ctx.log(
    `cycle: ${label}: per job completed in the window: CPU of PostgreSQL ` +
      `${c.postgresMsPerJob ?? '?'} ms${service}, this process ${c.clientsMsPerJob} ms, ` +
      `the machine in all ${c.machineMsPerJob} ms (${c.idlePct} % of its cores idle); ` +
      `${c.walBytesPerJob} bytes of WAL; ${c.walSyncsPerS ?? '?'} WAL flushes a second`,
  );
}
