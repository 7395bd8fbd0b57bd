import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { Pool } from 'undici';
import { issueToken } from '../../../src/auth/token-issuer.js';
import { testBackends } from '../../helpers/backends.js';
import { apiOk, JWT_SECRET, pieEnvironment } from '../../helpers/fault-harness.js';
import {
  describeStatuses,
  spawnLoadClient,
  type LoadClientOptions,
} from '../../helpers/load-client.js';
import { startBuiltPie, type PieProcess } from '../../helpers/pie-process.js';
import { scrapeMetrics } from '../../helpers/scrape-metrics.js';
import { TEST_JWT } from '../../helpers/test-server.js';
import { sleep } from '../../helpers/wait.js';

/**
 * Tenant fairness under load: one tenant flooding while another's p99 moves by less than 20%.
 * A real `pie serve`, started as `npm start` starts it, limits each client to RATE_LIMIT
 * requests per second. Tenant B runs jobs at a steady B_RATE; tenant A floods the same route
 * from another process over many connections, each sending its next request as soon as it has
 * an answer, and is mostly refused with 429.
 *
 * The flood is paused and resumed (SIGSTOP/SIGCONT) so that windows of "B alone" and "B with A
 * flooding" alternate: both sides of the comparison then see the same machine, whatever else
 * runs on it (PostgreSQL, the load generator, other suites).
 *
 * The comparison is made seven times over, in rounds of alternating windows, and judged on the
 * median round. A p99 is the 4th slowest of 378 run-jobs here, so a single stall of the machine
 * (seen: PostgreSQL answering nothing for half a second, the host pausing the VM) lands in one
 * side's tail and decides its p99 alone, in either direction. The median of seven rounds keeps
 * three such rounds from deciding the verdict, and a real cost of A's flood shows in every round.
 * (Five rounds, on a slower CI machine: 6 of 45 PostgreSQL rounds over, at random, and some
 * runs' medians at 94 to 96 %. With one round in seven over, a median of five fails about one
 * run in forty, a median of seven one in a hundred.)
 * (Three rounds of eight windows failed one CI run in four: about one round in six went over,
 * at random, and two of three is then not rare.)
 */

/**
 * Above B's rate, so B is never refused, and no higher: however hard A floods, it may still run
 * this many jobs a second, and those (unlike its refusals) cost the server what B's cost it.
 */
const RATE_LIMIT = 60;
/**
 * What B may send at once: B is open-loop, so a stall of this process, the server or the VM
 * (half a second, seen) makes B send the run-jobs it owes together. At 10, a stall of 200 ms
 * was enough to get B refused (seen in CI: 9 of 630 "alone" run-jobs answered 429); at 30, it
 * takes 600 ms. A's bucket is empty while it floods, so the burst only decides how many jobs A
 * gets at once after a pause, and SETTLE_MS passes before anything is measured.
 */
const BURST = 30;
const B_RATE = 50;
const FLOOD_CONNECTIONS = 64;
const ROUNDS = 7;
const WINDOWS = 6;
/** B is measured this long in each window: 6 x 1.25 s at 50 a second, 378 run-jobs a side. */
const MEASURE_MS = 1250;
/**
 * After a pause or resume, before measuring: A's last requests end, or its flood is back. At
 * 250 ms the first quarter second of the flooded windows had a p99 half as high again as the
 * rest (A's full bucket and the answers it held come back at once on resuming).
 */
const SETTLE_MS = 500;
/**
 * The p99 may also move by this much, however small it is. It is the 4th slowest of 378
 * run-jobs, and two sides of the same load differ on it by as much as a fifth (B alone against
 * B alone, measured: 0.79 to 1.11 times): at a p99 of a few milliseconds, a millisecond or two.
 */
const FLOOR_MS = 2;

/** The nice value of the flood's process: the lowest CPU priority. */
const LOWEST_PRIORITY = 19;

const key = new TextEncoder().encode(JWT_SECRET);

/** A tenant with one service whose default version waits for pull workers; its run path. */
async function setUpTenant(url: string, admin: string, clientId: string): Promise<string> {
  const domain = `/v2/clients/${clientId}/domains/d1`;
  await apiOk(url, admin, 'PUT', `/v2/clients/${clientId}`, {});
  await apiOk(url, admin, 'PUT', domain, {});
  await apiOk(url, admin, 'PUT', `/v2/models/${clientId}-model`, {});
  await apiOk(url, admin, 'PUT', `/v2/models/${clientId}-model/versions/1`, { features: [] });
  await apiOk(url, admin, 'PUT', `${domain}/services/s1`, {});
  await apiOk(url, admin, 'PUT', `${domain}/assignments/default`, {
    model_id: `${clientId}-model`,
    model_version: '1',
  });
  return `${domain}/service/s1/assignments/default/jobs`;
}

const runner = (clientId: string) =>
  issueToken(key, TEST_JWT, {
    subject: `${clientId}-runner`,
    scopes: ['jobs:write'],
    clients: [clientId],
    ttl: '1h',
  });

/** Latencies of tenant B's run-jobs, and the answers they got. */
class Samples {
  readonly latencies: number[] = [];
  readonly statuses: Record<string, number> = {};

  add(ms: number, status: number) {
    this.latencies.push(ms);
    this.statuses[status] = (this.statuses[status] ?? 0) + 1;
  }

  at(percentile: number): number {
    const sorted = [...this.latencies].sort((a, b) => a - b);
    return sorted[Math.ceil((percentile / 100) * sorted.length) - 1] ?? Number.NaN;
  }

  get count(): number {
    return this.latencies.length;
  }

  describe(): string {
    return (
      `p50 ${this.at(50).toFixed(2)} ms, p99 ${this.at(99).toFixed(2)} ms, ` +
      `max ${this.at(100).toFixed(1)} ms (${this.latencies.length} run-jobs: ` +
      `${describeStatuses(this.statuses)})`
    );
  }
}

/**
 * Open loop: one run-job every 1000/B_RATE ms for `ms`, whether or not earlier ones have been
 * answered, so a slow server shows as latency rather than as fewer requests.
 */
async function steady(pool: Pool, route: string, token: string, ms: number, into: Samples) {
  const pending: Promise<void>[] = [];
  const started = performance.now();
  for (let i = 0; i * (1000 / B_RATE) < ms; i++) {
    const wait = started + i * (1000 / B_RATE) - performance.now();
    if (wait > 0) await sleep(wait);
    pending.push(
      (async () => {
        const sent = performance.now();
        const response = await pool.request({
          path: route,
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: '{}',
        });
        await response.body.text();
        into.add(performance.now() - sent, response.statusCode);
      })(),
    );
  }
  await Promise.all(pending);
}

/**
 * Tenant A's flood: the closed-loop load client (test/helpers/load-client-process.ts) in its
 * own process, which the test pauses (SIGSTOP) and resumes (SIGCONT) to alternate "B alone"
 * and "B with A flooding" windows, so both see the same machine: other work on it (this runs
 * beside PostgreSQL and other suites) then weighs on both sides of the comparison alike.
 */
function startFlood(options: LoadClientOptions) {
  const { child, stdout, stderr } = spawnLoadClient(options);
  // The flood's own process yields the CPU to everything else. Making A's requests is not work
  // PIE does: in use, a flooding tenant runs on its own machines. Here it shares two cores with
  // PIE, PostgreSQL and B, and at equal priority the time it spends making requests showed up
  // in B's latency as if PIE had spent it. Its requests still arrive: the cores are mostly idle.
  if (child.pid !== undefined) os.setPriority(child.pid, LOWEST_PRIORITY);
  let killed = false;
  child.once('exit', (code) => {
    // The test ends it; ending on its own means it failed, which the counts will show.
    if (!killed) process.stderr.write(`the flood exited with ${code}:\n${stdout()}${stderr()}\n`);
  });
  return {
    pause: () => child.kill('SIGSTOP'),
    resume: () => child.kill('SIGCONT'),
    kill: () => {
      killed = true;
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    },
  };
}

/** CPU time a process has used, from /proc (0 where there is none: the figure is a diagnostic). */
function cpuSeconds(pid: number | undefined): number {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks
  } catch {
    return 0;
  }
}

/**
 * The whole machine's CPU time so far, from /proc/stat's first line (in clock ticks): busy
 * (everything but idle and I/O wait) and stolen by the host. A diagnostic: B's latency in one
 * CI run was twice that of an idle machine, on both sides, and these say whether other
 * processes or the host took the cores.
 */
function machineTicks(): { busy: number; steal: number; total: number } {
  try {
    const line = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const [user, nice, system, idle, iowait, irq, softirq, steal] = line
      .split(/\s+/)
      .slice(1, 9)
      .map(Number) as [number, number, number, number, number, number, number, number];
    const busy = user + nice + system + irq + softirq;
    return { busy, steal, total: busy + idle + iowait + steal };
  } catch {
    return { busy: 0, steal: 0, total: 0 };
  }
}

/** Jobs created and requests refused for their rate, from the server's /metrics. */
async function counters(url: string): Promise<{ created: number; refused: number }> {
  const metrics = await scrapeMetrics(url);
  return {
    created: metrics.get('pie_jobs_created_total{job_type="inference"}') ?? 0,
    refused: metrics.get('pie_rate_limited_total{reason="rate_limit"}') ?? 0,
  };
}

for (const backend of testBackends()) {
  describe(`fairness [${backend.name}]`, () => {
    it(`one tenant flooding moves another's p99 by less than 20%`, async (t) => {
      const setting = await pieEnvironment(backend.name, {
        PIE_RATE_LIMIT_RPS: String(RATE_LIMIT),
        PIE_RATE_LIMIT_BURST: String(BURST),
      });
      let pie: PieProcess | undefined;
      let flood: ReturnType<typeof startFlood> | undefined;
      let b: Pool | undefined;
      try {
        pie = await startBuiltPie(setting.env);
        const admin = await issueToken(key, TEST_JWT, {
          subject: 'fairness-admin',
          scopes: ['admin'],
          ttl: '1h',
        });
        const routeA = await setUpTenant(pie.url, admin, 'tenant-a');
        const routeB = await setUpTenant(pie.url, admin, 'tenant-b');
        const [tokenA, tokenB] = await Promise.all([runner('tenant-a'), runner('tenant-b')]);
        b = new Pool(pie.url, { connections: 16 });

        // Warm up (JIT, the job-target cache, connections), unmeasured.
        const warmUp = new Samples();
        await steady(b, routeB, tokenB, 1000, warmUp);

        const floodStarted = performance.now();
        flood = startFlood({
          origin: pie.url,
          connections: FLOOD_CONNECTIONS,
          durationMs: 10 * 60_000, // ended by the test
          method: 'POST',
          headers: { authorization: `Bearer ${tokenA}`, 'content-type': 'application/json' },
          body: '{}',
          paths: [routeA],
          acceptStatus: 202,
          collectJobIds: false,
        });
        // Measure once the flood runs: A has spent its bucket and is being refused.
        const floodDue = performance.now() + 30_000;
        while ((await counters(pie.url)).refused === 0) {
          assert.ok(performance.now() < floodDue, 'the flood never got a 429');
          await sleep(100);
        }

        // Two pairs of windows unmeasured: the first round was the worst of three in four of
        // six runs (two of them over the allowed p99: 121 % and 481 %), its paths still cold.
        const warmUpWindows = new Samples();
        for (const step of [flood.pause, flood.resume, flood.pause, flood.resume]) {
          step();
          await sleep(SETTLE_MS);
          await steady(b, routeB, tokenB, MEASURE_MS, warmUpWindows);
        }

        const rounds: { alone: Samples; flooded: Samples }[] = [];
        const cpu = { alone: 0, flooded: 0 };
        const machine = {
          alone: { busy: 0, steal: 0, total: 0 },
          flooded: { busy: 0, steal: 0, total: 0 },
        };
        const measure = async (into: Samples, side: 'alone' | 'flooded') => {
          const before = cpuSeconds(pie!.child.pid);
          const ticksBefore = machineTicks();
          await steady(b!, routeB, tokenB, MEASURE_MS, into);
          cpu[side] += cpuSeconds(pie!.child.pid) - before;
          const ticksAfter = machineTicks();
          for (const field of ['busy', 'steal', 'total'] as const) {
            machine[side][field] += ticksAfter[field] - ticksBefore[field];
          }
        };
        for (let round = 0; round < ROUNDS; round++) {
          const { alone, flooded } = { alone: new Samples(), flooded: new Samples() };
          for (let window = 0; window < WINDOWS; window++) {
            flood.pause();
            await sleep(SETTLE_MS);
            await measure(alone, 'alone');
            flood.resume();
            await sleep(SETTLE_MS);
            await measure(flooded, 'flooded');
          }
          rounds.push({ alone, flooded });
        }
        flood.kill();
        const floodS = (performance.now() - floodStarted) / 1000;
        const { created, refused } = await counters(pie.url);
        const measured = rounds.reduce((n, r) => n + r.alone.count + r.flooded.count, 0);
        const acceptedA = created - warmUp.count - warmUpWindows.count - measured;

        // Each round's flooded p99 as a share of what it may be; the median round is judged.
        const allowed = (alone: Samples) => Math.max(alone.at(99) * 1.2, alone.at(99) + FLOOR_MS);
        const shares = rounds.map((r) => r.flooded.at(99) / allowed(r.alone));
        rounds.forEach(({ alone, flooded }, i) => {
          t.diagnostic(`round ${i + 1}, B alone: ${alone.describe()}`);
          t.diagnostic(`round ${i + 1}, B with A flooding: ${flooded.describe()}`);
          t.diagnostic(
            `round ${i + 1}: B's p99 with A flooding is ` +
              `${(flooded.at(99) / alone.at(99)).toFixed(2)} times its p99 alone ` +
              `(${(100 * shares[i]!).toFixed(0)} % of the allowed ${allowed(alone).toFixed(2)} ms)`,
          );
        });
        const busy = (seconds: number) =>
          `${((100 * seconds) / ((ROUNDS * WINDOWS * MEASURE_MS) / 1000)).toFixed(0)} %`;
        t.diagnostic(
          `pie serve's CPU while B was measured: ${busy(cpu.alone)} alone, ` +
            `${busy(cpu.flooded)} with A flooding`,
        );
        const share = (ticks: number, side: 'alone' | 'flooded') =>
          `${((100 * ticks) / Math.max(1, machine[side].total)).toFixed(0)} %`;
        t.diagnostic(
          `the machine's ${os.availableParallelism()} cores while B was measured: ` +
            `${share(machine.alone.busy, 'alone')} busy and ` +
            `${share(machine.alone.steal, 'alone')} stolen by the host alone, ` +
            `${share(machine.flooded.busy, 'flooded')} busy and ` +
            `${share(machine.flooded.steal, 'flooded')} stolen with A flooding`,
        );
        t.diagnostic(
          `A over ${FLOOD_CONNECTIONS} connections, flooding half of ${floodS.toFixed(1)} s: ` +
            `${acceptedA} run-jobs accepted, ${refused} refused with 429`,
        );

        for (const { alone, flooded } of rounds) {
          assert.deepEqual(alone.statuses, { 202: alone.count }, 'B alone: every run-job a 202');
          assert.deepEqual(flooded.statuses, { 202: flooded.count }, 'B flooded: every one 202');
        }
        // A asked for more than its rate (a closed loop on each connection), and was refused.
        assert.ok(refused > RATE_LIMIT * 5, `A was refused ${refused} times`);
        assert.ok(acceptedA <= BURST + RATE_LIMIT * floodS, `A got ${acceptedA} jobs in`);
        const median = [...shares].sort((x, y) => x - y)[Math.floor(ROUNDS / 2)]!;
        assert.ok(
          median < 1,
          `B's p99 with A flooding, as a share of 1.2 times (or ${FLOOR_MS} ms over) its p99 ` +
            `alone, by round: ${shares.map((share) => `${(100 * share).toFixed(0)} %`).join(', ')}`,
        );
      } finally {
        flood?.kill();
        await b?.close();
        if (pie !== undefined) {
          pie.child.kill('SIGTERM');
          await pie.exited;
        }
        await setting.dispose();
      }
    });
  });
}
