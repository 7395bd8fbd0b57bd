import { performance } from 'node:perf_hooks';
import { machineBusyMs, postmasterOf, processCpuMs, serverCpuMs } from '../cpu.js';
import { withClient } from '../setup.js';
import type { BenchContext } from '../types.js';
import {
  inWindow,
  logSide,
  Loops,
  measureWindow,
  type SideResult,
  TERMS,
  waitUntil,
  type Window,
} from './cycle-terms.js';
import {
  type ClaimAnswer,
  type ClaimedJob,
  createBenchTenant,
  PieClient,
  type RunJobAnswer,
} from './tenant.js';

/**
 * PIE's side of the cycle: TERMS.producers loops each running one job per request (run-job
 * over HTTP), TERMS.consumers pull workers each claiming up to TERMS.batch jobs (long-polling
 * up to 1 s) and completing the batch before claiming again.
 */

const SERVICES = 4;

/**
 * ---- THE ONE PLACE WHERE PIE'S WORKER COMPLETES A CLAIMED BATCH ----
 *
 * One request for the whole claim: `POST .../jobs/complete` with every job's completion and
 * attempt, under the worker's token (the admin token here, as the claim), as pg-boss completes
 * a fetch with one `complete(queue, ids)`. PIE records the jobs that fire no subscription (all
 * of them here) in one transaction and one statement, each job's effects whole. `onCompleted`
 * is called with the number of jobs PIE completed.
 */
async function completeClaimedBatch(
  pie: PieClient,
  completePath: string,
  jobs: readonly ClaimedJob[],
  onCompleted: (count: number) => void,
): Promise<void> {
  if (jobs.length === 0) return;
  const { results } = await pie.expect<{ results: { status_code: number }[] }>(
    200,
    'POST',
    completePath,
    {
      completions: jobs.map((job) => ({
        job_id: job.job_id,
        attempt: job.attempt,
        status: 'success',
        output: {},
      })),
    },
  );
  const refused = results.filter((result) => result.status_code >= 300);
  if (refused.length > 0) {
    throw new Error(`${refused.length} completions refused: ${JSON.stringify(refused[0])}`);
  }
  onCompleted(results.length);
}

/** What PIE's window cost, per job completed in it. */
export interface CycleCost {
  /** CPU ms of the PostgreSQL server's processes; undefined when it is not on this machine. */
  postgresMsPerJob: number | undefined;
  /** CPU ms of `pie serve`. */
  pieMsPerJob: number;
  /** CPU ms of the bench's own process, where PIE's producers and workers run. */
  clientsMsPerJob: number;
  /** CPU ms of the whole machine, every process: above the three, what else ran meanwhile. */
  machineMsPerJob: number;
  /** WAL written, in bytes (`pg_current_wal_lsn()`). */
  walBytesPerJob: number;
  /** WAL flushes to disk per second of the window (`pg_stat_wal.wal_sync`); undefined before 14. */
  walSyncsPerS: number | undefined;
}

export interface PieSideResult extends SideResult {
  cost: CycleCost;
}

/**
 * Reads the CPU time of PostgreSQL, `pie serve`, this process and the machine, and the server's
 * WAL position and flushes, at the window's start and end (only PIE's side runs then; the peers
 * run before or after it, never beside it). The server's figures count every database on it,
 * so nothing else should run against it meanwhile. Resolves with the differences.
 */
function spentOverWindow(ctx: BenchContext, w: Window) {
  return withClient(ctx.databaseUrl, async (client) => {
    const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
    const postmaster = postmasterOf(rows[0]!.pid);
    if (postmaster === undefined)
      ctx.log('cycle: PostgreSQL is not on this machine: no CPU figure');
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
    const read = async () => ({
      postgres: postmaster === undefined ? undefined : serverCpuMs(postmaster),
      pie: processCpuMs(ctx.piePid),
      clients: process.cpuUsage(),
      machine: machineBusyMs(),
      wal: await wal(),
    });
    await waitUntil(w.from);
    const start = await read();
    await waitUntil(w.until);
    const end = await read();
    const clients = process.cpuUsage(start.clients);
    return {
      postgresMs:
        end.postgres === undefined || start.postgres === undefined
          ? undefined
          : end.postgres - start.postgres,
      pieMs: end.pie - start.pie,
      clientsMs: (clients.user + clients.system) / 1000,
      machineMs: end.machine - start.machine,
      walBytes: end.wal.bytes - start.wal.bytes,
      walSyncs:
        end.wal.syncs === undefined || start.wal.syncs === undefined
          ? undefined
          : end.wal.syncs - start.wal.syncs,
    };
  });
}

export async function measurePie(ctx: BenchContext): Promise<PieSideResult> {
  const pie = new PieClient(ctx.pieUrl, ctx.adminToken);
  try {
    const tenant = await createBenchTenant(pie, 'bench-cycle', 'bench-cycle-model', SERVICES);
    let created = 0;
    let completed = 0;
    let counted = 0;
    const w = measureWindow(ctx);
    const loops = new Loops(w);
    // The claim path's sibling: .../versions/{v}/jobs/complete.
    const completePath = tenant.claimPath.replace(/\/claim$/, '/complete');

    const produce = async (producer: number) => {
      // Each producer keeps to one service, so all services get jobs.
      const path = tenant.runPath(tenant.services[producer % tenant.services.length]!);
      while (loops.running()) {
        await pie.expect<RunJobAnswer>(202, 'POST', path, {});
        created += 1;
      }
    };

    const consume = async (worker: number) => {
      const body = {
        worker_id: `bench-worker-${worker}`,
        max_jobs: TERMS.batch,
        wait_ms: 1000,
        lease_s: 60,
      };
      // The loop stops claiming at the end of the window but completes what it claimed, so no
      // job is left leased.
      while (loops.running()) {
        const { jobs } = await pie.expect<ClaimAnswer>(200, 'POST', tenant.claimPath, body);
        await completeClaimedBatch(pie, completePath, jobs, (count) => {
          completed += count;
          if (inWindow(w, performance.now())) counted += count;
        });
      }
    };

    ctx.log(
      `cycle: PIE: ${TERMS.producers} producers (run-job over HTTP), ${TERMS.consumers} pull ` +
        `workers claiming up to ${TERMS.batch} (wait_ms 1000), each claim completed in one ` +
        `request (POST .../jobs/complete)`,
    );
    const cost = spentOverWindow(ctx, w);
    // Awaited below; if the loops fail first, its own failure must not go unhandled.
    cost.catch(() => {});
    loops.start(TERMS.producers, produce);
    loops.start(TERMS.consumers, consume);
    await loops.done();
    const spent = await cost;
    const perJob = (amount: number) =>
      counted === 0 ? 0 : Math.round((amount / counted) * 1000) / 1000;
    const result = {
      jobsPerS: counted / w.seconds,
      created,
      completed,
      cost: {
        postgresMsPerJob: spent.postgresMs === undefined ? undefined : perJob(spent.postgresMs),
        pieMsPerJob: perJob(spent.pieMs),
        clientsMsPerJob: perJob(spent.clientsMs),
        machineMsPerJob: perJob(spent.machineMs),
        walBytesPerJob: Math.round(perJob(spent.walBytes)),
        walSyncsPerS:
          spent.walSyncs === undefined ? undefined : Math.round(spent.walSyncs / w.seconds),
      },
    };
    logSide(ctx, 'PIE', result);
    const { cost: c } = result;
    ctx.log(
      `cycle: PIE: per job completed in the window: CPU of PostgreSQL ` +
        `${c.postgresMsPerJob ?? '?'} ms, pie serve ${c.pieMsPerJob} ms, its clients (this ` +
        `process) ${c.clientsMsPerJob} ms, the machine in all ${c.machineMsPerJob} ms; ` +
        `${c.walBytesPerJob} bytes of WAL; ${c.walSyncsPerS ?? '?'} WAL flushes a second`,
    );
    return result;
  } finally {
    await pie.close();
  }
}
