import { performance } from 'node:perf_hooks';
import type { BenchContext } from '../types.js';
import { inWindow, logSide, Loops, measureWindow, type SideResult, TERMS } from './cycle-terms.js';
import {
  type ClaimAnswer,
  type ClaimedJob,
  completeJob,
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
 * PIE has no batch-completion route yet, so each job's completion is its own request
 * (`POST` to its callback with its own token), all of the batch's sent concurrently. When the
 * batch-completion route lands, switch this function to one request for the whole batch, and
 * update BENCHMARKS.md ("The cycle at equal terms"), which says completions are per job.
 * `onCompleted` is called once per job whose completion PIE has answered.
 */
async function completeClaimedBatch(
  pie: PieClient,
  jobs: readonly ClaimedJob[],
  onCompleted: (count: number) => void,
): Promise<void> {
  await Promise.all(
    jobs.map(async (job) => {
      await completeJob(pie, job);
      onCompleted(1);
    }),
  );
}

export async function measurePie(ctx: BenchContext): Promise<SideResult> {
  const pie = new PieClient(ctx.pieUrl, ctx.adminToken);
  try {
    const tenant = await createBenchTenant(pie, 'bench-cycle', 'bench-cycle-model', SERVICES);
    let created = 0;
    let completed = 0;
    let counted = 0;
    const w = measureWindow(ctx);
    const loops = new Loops(w);

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
        await completeClaimedBatch(pie, jobs, (count) => {
          completed += count;
          if (inWindow(w, performance.now())) counted += count;
        });
      }
    };

    ctx.log(
      `cycle: PIE: ${TERMS.producers} producers (run-job over HTTP), ${TERMS.consumers} pull ` +
        `workers claiming up to ${TERMS.batch} (wait_ms 1000), each job of a claim completed ` +
        `by its own callback request, the claim's concurrently`,
    );
    loops.start(TERMS.producers, produce);
    loops.start(TERMS.consumers, consume);
    await loops.done();
    const result = { jobsPerS: counted / w.seconds, created, completed };
    logSide(ctx, 'PIE', result);
    return result;
  } finally {
    await pie.close();
  }
}
