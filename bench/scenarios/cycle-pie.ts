import { performance } from 'node:perf_hooks';
import type { BenchContext } from '../types.js';
import { costOverWindow } from './cycle-cost.js';
import { inWindow, logSide, Loops, measureWindow, type SideResult, TERMS } from './cycle-terms.js';
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

export async function measurePie(ctx: BenchContext): Promise<SideResult> {
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
    const cost = costOverWindow(ctx, 'PIE', w, () => counted, ctx.piePid);
    // Awaited below; if the loops fail first, its own failure must not go unhandled.
    cost.catch(() => {});
    loops.start(TERMS.producers, produce);
    loops.start(TERMS.consumers, consume);
    await loops.done();
    const result = { jobsPerS: counted / w.seconds, created, completed, cost: await cost };
    logSide(ctx, 'PIE', result);
    return result;
  } finally {
    await pie.close();
  }
}
