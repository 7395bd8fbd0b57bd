import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { testBackends } from '../../helpers/backends.js';
import { adminToken, apiOk, pieEnvironment } from '../../helpers/fault-harness.js';
import { startPie, type PieProcess } from '../../helpers/pie-process.js';
import { scrapeMetrics } from '../../helpers/scrape-metrics.js';
import { sleep } from '../../helpers/wait.js';

/**
 * Schedules across processes: three `pie serve` on one PostgreSQL fire a services_init
 * schedule that ticks every second (`* * * * * *`, 6 fields). For 10 s every tick must fire
 * exactly once and none be missed; then every process stops for 5 s, and once they are back
 * the ticks missed meanwhile must fire once, not once each. PostgreSQL only: the embedded
 * database is one process per data folder.
 *
 * Each firing is one services init: one batch of kind `schedule` holding one job per service.
 * The batches give the firings; a tick fires well within its second, so the second a firing
 * falls in names its tick.
 */

const RUN_S = 10;
const DOWN_S = 5;
const BACK_S = 3;
const SERVICES = ['s1', 's2', 's3'];
const CLIENT = 'schedules';
const DOMAIN = `/v2/clients/${CLIENT}/domains/d1`;
const SCHEDULE = `${DOMAIN}/schedules/every-second`;

interface Firing {
  at: number;
  second: number;
  services: string[];
}

async function setUpTenant(url: string, token: string) {
  const routes: [string, unknown][] = [
    [`/v2/clients/${CLIENT}`, {}],
    [DOMAIN, {}],
    ['/v2/models/m1', {}],
    ['/v2/models/m1/versions/1', { features: [] }],
    ...SERVICES.map((service): [string, unknown] => [`${DOMAIN}/services/${service}`, {}]),
    [`${DOMAIN}/assignments/default`, { model_id: 'm1', model_version: '1' }],
  ];
  for (const [route, body] of routes) await apiOk(url, token, 'PUT', route, body);
}

/** The fleet's schedule counters, summed over its processes. */
async function fleetTicks(processes: PieProcess[]) {
  const totals = { fired: 0, failed: 0, late: 0 };
  for (const pie of processes) {
    const metrics = await scrapeMetrics(pie.url);
    totals.fired += metrics.get('pie_schedule_ticks_total{outcome="fired"}') ?? 0;
    totals.failed += metrics.get('pie_schedule_ticks_total{outcome="failed"}') ?? 0;
    totals.late += metrics.get('pie_schedule_ticks_late_total') ?? 0;
  }
  return totals;
}

async function stopAll(processes: PieProcess[]) {
  for (const pie of processes) pie.child.kill('SIGTERM');
  await Promise.all(processes.map((pie) => pie.exited));
}

/** The seconds of `firings`, each once and with none left out between the first and last. */
function assertEverySecondOnce(firings: Firing[], what: string) {
  const seconds = firings.map((firing) => firing.second);
  assert.equal(new Set(seconds).size, seconds.length, `${what}: no tick fired twice`);
  const first = seconds[0]!;
  assert.deepEqual(
    seconds,
    seconds.map((_, i) => first + i),
    `${what}: every second from the first to the last fired`,
  );
}

for (const backend of testBackends().filter((each) => each.name === 'postgres')) {
  describe(`schedules across processes [${backend.name}]`, () => {
    it('three processes fire each tick once, miss none, and fire ticks missed while all were down once', async () => {
      const setting = await pieEnvironment(backend.name, { PIE_SHUTDOWN_GRACE_S: '1' });
      let processes: PieProcess[] = [];
      try {
        processes = await Promise.all([1, 2, 3].map(() => startPie(setting.env)));
        const url = processes[0]!.url;
        const token = await adminToken();
        await setUpTenant(url, token);
        await apiOk(url, token, 'PUT', SCHEDULE, {
          cron: '* * * * * *',
          action: { type: 'services_init' },
        });
        await sleep(RUN_S * 1000);
        // Ticks go on firing while the fleet is read and stopped: the firings the counters
        // saw are those begun before the reading, give or take the one under way.
        const readFrom = Date.now();
        const running = await fleetTicks(processes);
        const readTo = Date.now();
        await stopAll(processes);
        const stoppedAt = Date.now();
        processes = [];

        await sleep(DOWN_S * 1000);
        const restartedAt = Date.now();
        processes = await Promise.all([1, 2, 3].map(() => startPie(setting.env)));
        await sleep(BACK_S * 1000);
        // Paused before counting: a PUT waits for a tick being fired, and then none follows.
        await apiOk(processes[0]!.url, token, 'PUT', SCHEDULE, { status: 'paused' });
        const back = await fleetTicks(processes);
        const schedule = await apiOk(processes[0]!.url, token, 'GET', SCHEDULE);

        const db = await setting.open();
        const { rows } = await db
          .query<{ created_at: Date; services: string[]; kind: string; batch_id: string }>(
            `select b.batch_id, b.kind, b.created_at,
               array_agg(j.service_id order by j.service_id) as services
             from batches b join jobs j on j.client_id = b.client_id and j.batch_id = b.batch_id
             where b.client_id = $1 group by b.client_id, b.batch_id order by b.created_at`,
            [CLIENT],
          )
          .finally(() => db.close());
        const firings: Firing[] = rows.map((row) => ({
          at: row.created_at.getTime(),
          second: Math.floor(row.created_at.getTime() / 1000),
          services: row.services,
        }));
        const before = firings.filter((firing) => firing.at < stoppedAt);
        const after = firings.filter((firing) => firing.at >= restartedAt);
        console.log(
          `${before.length} firings in ${RUN_S} s (fleet counted ${JSON.stringify(running)}), ` +
            `${after.length} after ${DOWN_S} s down (counted ${JSON.stringify(back)}); ` +
            `the first after the restart was ${((after[0]?.at ?? NaN) - (before.at(-1)?.at ?? NaN)) / 1000} s after the last before`,
        );

        assert.equal(before.length + after.length, firings.length, 'nothing fired while down');
        for (const firing of firings) {
          assert.deepEqual(firing.services, SERVICES, 'each firing is one init of every service');
        }
        assert.ok(
          rows.every((row) => row.kind === 'schedule'),
          'each firing is one batch of kind schedule',
        );
        const { rows: loose } = await (async () => {
          const check = await setting.open();
          return check
            .query<{ n: number }>(
              'select count(*)::int as n from jobs where client_id = $1 and batch_id is null',
              [CLIENT],
            )
            .finally(() => check.close());
        })();
        assert.equal(loose[0]!.n, 0, 'every job the schedule started is in its batch');
        assert.equal(schedule.last_batch_id, rows.at(-1)?.batch_id, 'last_batch_id names the last');
        // While running: one firing a second, none missed, as many as the fleet counted.
        assert.ok(before.length >= RUN_S - 2, `${before.length} firings in ${RUN_S} s`);
        assertEverySecondOnce(before, 'while running');
        assert.deepEqual({ ...running, fired: 0 }, { fired: 0, failed: 0, late: 0 });
        const begunBy = (time: number) => before.filter((firing) => firing.at < time).length;
        assert.ok(
          running.fired >= begunBy(readFrom - 500) && running.fired <= begunBy(readTo),
          `the fleet counted ${running.fired} firings, as many as had fired by then`,
        );

        // Back up: the ticks missed fire as one firing, the first, then every second again.
        assert.ok(after.length >= 1, 'the schedule fired again after the restart');
        assert.ok(
          after[0]!.at - before.at(-1)!.at >= DOWN_S * 1000,
          'the first firing after the restart came after the downtime',
        );
        assertEverySecondOnce(after, 'after the restart');
        assert.deepEqual(back, { fired: after.length, failed: 0, late: 1 });
        assert.equal(schedule.last_error, null);
      } catch (error) {
        for (const pie of processes) console.log(`PIE output (end):\n${pie.output().slice(-2000)}`);
        throw error;
      } finally {
        await stopAll(processes);
        await setting.dispose();
      }
    });
  });
}
