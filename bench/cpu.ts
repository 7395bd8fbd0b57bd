import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

/**
 * CPU time from /proc (Linux): of one process, of a PostgreSQL server's whole process tree (the
 * postmaster, its backends and background processes) and of the whole machine. Read at two
 * moments, the difference is the CPU a phase of the bench cost each of them.
 */

/** Clock ticks per second, the unit of /proc/<pid>/stat's times (`getconf CLK_TCK`, 100 mostly). */
const TICKS_PER_S = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

interface ProcStat {
  /** The command, e.g. `postgres` for each of a PostgreSQL server's processes. */
  command: string;
  ppid: number;
  /** utime + stime, in ms. */
  cpuMs: number;
  /** cutime + cstime, in ms: the children this process has reaped (exited backends). */
  childrenCpuMs: number;
}

function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined; // gone meanwhile
  }
  // Fields after the command, which is in parentheses and may hold spaces: state is field 3,
  // ppid 4, utime 14, stime 15, cutime 16, cstime 17.
  const close = text.lastIndexOf(')');
  const fields = text.slice(close + 2).split(' ');
  const ms = (index: number) => (Number(fields[index]) * 1000) / TICKS_PER_S;
  return {
    command: text.slice(text.indexOf('(') + 1, close),
    ppid: Number(fields[1]),
    cpuMs: ms(11) + ms(12),
    childrenCpuMs: ms(13) + ms(14),
  };
}

/** utime + stime of process `pid` so far, in ms. */
export function processCpuMs(pid: number): number {
  const stat = readStat(pid);
  if (stat === undefined) throw new Error(`no /proc/${pid}/stat`);
  return stat.cpuMs;
}

/**
 * The postmaster of the server a backend belongs to (`select pg_backend_pid()` gives one), or
 * undefined when that backend is not a process of this machine (a server elsewhere).
 */
export function postmasterOf(backendPid: number): number | undefined {
  const backend = readStat(backendPid);
  if (backend?.command !== 'postgres') return undefined;
  return readStat(backend.ppid)?.command === 'postgres' ? backend.ppid : undefined;
}

/**
 * The CPU time of a server's process tree so far, in ms: the postmaster's own, every child's
 * (backends of every database on it, autovacuum, WAL writer, checkpointer) and the children it
 * has reaped, so a backend that exits between two readings is still counted.
 */
export function serverCpuMs(postmaster: number): number {
  const root = readStat(postmaster);
  if (root === undefined) throw new Error(`no /proc/${postmaster}/stat`);
  let total = root.cpuMs + root.childrenCpuMs;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat?.ppid === postmaster) total += stat.cpuMs;
  }
  return total;
}

/** The busy CPU time of the whole machine so far, all cores together, in ms (/proc/stat). */
export function machineBusyMs(): number {
  const ticks = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  const times = ticks.slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: all but idle and iowait
  const busy = times.slice(0, 8).reduce((sum, t, i) => (i === 3 || i === 4 ? sum : sum + t), 0);
  return (busy * 1000) / TICKS_PER_S;
}
