import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/config.js';
import { SchedulerService } from '../../src/services/scheduler.service.js';
import { fireDueSchedules, type FiredTick } from '../../src/usecases/fire-schedules.usecase.js';
import { assertStatus, expectBody } from '../helpers/assertions.js';
import { createTenant, type Tenant } from '../helpers/fixtures.js';
import type { Page } from '../helpers/paging.js';
import { makeTickDue, type Schedule } from '../helpers/schedules.js';
import { describeOnEachBackend, type TestServer } from '../helpers/test-server.js';
import { sleep, waitForValue } from '../helpers/wait.js';

/**
 * Firing ticks, driven by hand: a test makes a schedule's tick due by moving next_run_at into
 * the past, then fires what is due as the scheduler's turn would, so nothing waits on a clock.
 * The schedules here tick once a year unless a test says otherwise, so that none comes due by
 * itself while the file runs.
 */

const YEARLY = '0 0 1 1 *';

interface Job {
  job_id: string;
  service_id: string | null;
  job_type: string;
  input: Record<string, unknown>;
  priority: number;
  status: string;
  batch_id: string | null;
}

async function put(s: TestServer, t: Tenant, name: string, body: unknown) {
  return expectBody<Schedule>(await s.put(`${t.domainPath}/schedules/${name}`, body), 201);
}

async function get(s: TestServer, t: Tenant, name: string) {
  return expectBody<Schedule>(await s.get(`${t.domainPath}/schedules/${name}`), 200);
}

/** Makes the tick `name` owes come `ago` in the past. */
function makeDue(s: TestServer, t: Tenant, name: string, ago = '1 hour') {
  return makeTickDue(s, { clientId: t.clientId, domainId: t.domainId, name }, ago);
}

/** Fires what is due, as a turn of the scheduler would; the ticks of `t`'s schedules. */
async function fire(s: TestServer, t: Tenant): Promise<FiredTick[]> {
  const { fired, unfired } = await fireDueSchedules(s.ctx, 100);
  assert.deepEqual(unfired, [], 'every due tick fired or was fired elsewhere');
  return fired.filter((tick) => tick.schedule.clientId === t.clientId);
}

async function jobs(s: TestServer, t: Tenant): Promise<Job[]> {
  return expectBody<Page<Job>>(await s.get(`${t.domainPath}/jobs?limit=100`), 200).items;
}

async function counter(s: TestServer, name: string, labels: Record<string, string> = {}) {
  const metric = await s.ctx.metrics.registry.getSingleMetric(name)?.get();
  const value = metric?.values.find((each) =>
    Object.entries(labels).every(([key, label]) => each.labels[key] === label),
  );
  return value?.value ?? 0;
}

function assertFuture(value: string | null, label: string, withinMs: number) {
  assert.ok(value !== null, `${label} is set`);
  const ahead = Date.parse(value) - Date.now();
  assert.ok(
    ahead > 0 && ahead <= withinMs,
    `${label} ${value} is ahead, by at most ${withinMs} ms`,
  );
}

describeOnEachBackend('schedules: firing ticks', (server) => {
  describe('actions', () => {
    it('services_init: one inference job per service that has not departed, at the schedule priority', async () => {
      const s = server();
      const t = await createTenant(s, {
        services: {
          'service-1': { route: 'r1' },
          'service-2': { route: 'r2' },
          gone: { route: 'r3' },
        },
      });
      assertStatus(await s.post(`${t.domainPath}/services/gone/depart`), 200);
      const action = { type: 'services_init' };
      const created = await put(s, t, 'init', { cron: YEARLY, action, priority: 7 });
      await makeDue(s, t, 'init');
      const createdBefore = await counter(s, 'pie_jobs_created_total', { job_type: 'inference' });
      const firedBefore = await counter(s, 'pie_schedule_ticks_total', { outcome: 'fired' });

      const [tick, ...more] = await fire(s, t);
      assert.equal(more.length, 0);
      assert.equal(tick?.outcome, 'fired');
      assert.ok(tick.lateS >= 3599 && tick.lateS < 3700, `an hour late: ${tick.lateS}`);
      assert.equal(tick.caughtUp, false, 'the tick after it is next year');

      const started = await jobs(s, t);
      assert.deepEqual(started.map((job) => job.service_id).sort(), ['service-1', 'service-2']);
      for (const job of started) {
        assert.deepEqual([job.job_type, job.priority, job.input], ['inference', 7, {}]);
      }
      const after = await get(s, t, 'init');
      assert.equal(after.next_run_at, created.next_run_at, 'owes the next yearly tick again');
      assert.ok(Math.abs(Date.parse(after.last_run_at!) - Date.now()) < 60_000, 'ran now');
      assert.deepEqual([after.last_error, after.last_job_id], [null, null]);
      // The tick's jobs are one batch of kind schedule, which the schedule names.
      const batch = await s.get(`${t.domainPath}/batches/${after.last_batch_id}`);
      assertStatus(batch, 200);
      assert.deepEqual([batch.body.kind, batch.body.total], ['schedule', 2]);
      for (const job of started) assert.equal(job.batch_id, after.last_batch_id);
      assert.equal(after.updated_at, created.updated_at, 'a tick is not an update');
      assert.equal(
        await counter(s, 'pie_jobs_created_total', { job_type: 'inference' }),
        createdBefore + 2,
        'the jobs were announced once committed',
      );
      assert.equal(
        await counter(s, 'pie_schedule_ticks_total', { outcome: 'fired' }),
        firedBefore + 1,
      );

      assert.deepEqual(await fire(s, t), [], 'nothing is owed now');
      assert.equal((await jobs(s, t)).length, 2);
    });

    it('run_job: one job with the stored type, input and priority; last_job_id names it', async () => {
      const s = server();
      const t = await createTenant(s);
      const action = {
        type: 'run_job',
        assignment_key: 'default',
        service_id: 'service-1',
        job_type: 'training',
        input: { epochs: 3 },
      };
      await put(s, t, 'train', { cron: YEARLY, action, priority: -5 });
      await makeDue(s, t, 'train');
      assert.equal((await fire(s, t))[0]?.outcome, 'fired');
      const [job, ...more] = await jobs(s, t);
      assert.equal(more.length, 0);
      assert.deepEqual(
        {
          service: job?.service_id,
          type: job?.job_type,
          input: job?.input,
          priority: job?.priority,
        },
        { service: 'service-1', type: 'training', input: { epochs: 3 }, priority: -5 },
      );
      const after = await get(s, t, 'train');
      assert.equal(after.last_job_id, job?.job_id);
      assert.equal(after.last_error, null);
    });
  });

  describe('failures', () => {
    it('run_job on a departed service: last_error says why, the next tick is owed; a tick that succeeds clears it', async () => {
      const s = server();
      const t = await createTenant(s);
      const action = { type: 'run_job', assignment_key: 'default', service_id: 'service-1' };
      const created = await put(s, t, 'departed', { cron: YEARLY, action });
      assertStatus(await s.post(`${t.domainPath}/services/service-1/depart`), 200);
      await makeDue(s, t, 'departed');
      const failedBefore = await counter(s, 'pie_schedule_ticks_total', { outcome: 'failed' });

      assert.equal((await fire(s, t))[0]?.outcome, 'failed');
      const failed = await get(s, t, 'departed');
      assert.match(failed.last_error ?? '', /service "service-1" has departed/);
      assert.equal(failed.status, 'active');
      assert.equal(failed.next_run_at, created.next_run_at, 'the next tick is owed');
      assert.equal(failed.last_job_id, null);
      assert.ok(failed.last_run_at !== null, 'the tick is recorded as run');
      assert.deepEqual(await jobs(s, t), [], 'the failed tick started nothing');
      assert.equal(
        await counter(s, 'pie_schedule_ticks_total', { outcome: 'failed' }),
        failedBefore + 1,
      );

      const service = `${t.domainPath}/services/service-1`;
      assertStatus(await s.put(service, { status: 'active' }), 200);
      await makeDue(s, t, 'departed');
      assert.equal((await fire(s, t))[0]?.outcome, 'fired');
      const recovered = await get(s, t, 'departed');
      assert.equal(recovered.last_error, null);
      assert.equal(recovered.last_job_id, (await jobs(s, t))[0]?.job_id);
    });

    it('services_init in an inactive domain: last_error says so; nothing started', async () => {
      const s = server();
      const t = await createTenant(s);
      await put(s, t, 'init', { cron: YEARLY, action: { type: 'services_init' } });
      assertStatus(await s.put(t.domainPath, { status: 'inactive' }), 200);
      await makeDue(s, t, 'init');
      assert.equal((await fire(s, t))[0]?.outcome, 'failed');
      assert.match((await get(s, t, 'init')).last_error ?? '', /is inactive/);
      assert.deepEqual(await jobs(s, t), []);
    });
  });

  describe('faults', () => {
    /** Makes the database refuse writes to `table` for `t`'s client, until the returned undo. */
    async function refuseWrites(s: TestServer, t: Tenant, table: 'jobs' | 'schedules') {
      const name = `refuse_${table}_${t.clientId.replace(/\W/g, '_')}`;
      await s.db.exec(`
        create function ${name}() returns trigger language plpgsql as $$
        begin
          if new.client_id = '${t.clientId}' then raise exception 'refused by the test'; end if;
          return new;
        end $$;
        create trigger ${name} before insert or update on ${table}
          for each row execute function ${name}();`);
      return () => s.db.exec(`drop trigger ${name} on ${table}; drop function ${name}();`);
    }

    it('an action that fails in the database is undone alone: recorded, and the next tick owed', async () => {
      const s = server();
      const t = await createTenant(s);
      const action = { type: 'run_job', assignment_key: 'default', service_id: 'service-1' };
      const created = await put(s, t, 'faulty', { cron: YEARLY, action });
      await makeDue(s, t, 'faulty');
      const undo = await refuseWrites(s, t, 'jobs');
      const [tick] = await fire(s, t).finally(undo);
      assert.equal(tick?.outcome, 'failed');
      assert.match(String(tick.fault), /refused by the test/, 'the fault is handed to the log');
      const after = await get(s, t, 'faulty');
      assert.match(after.last_error ?? '', /failed unexpectedly/);
      assert.equal(after.next_run_at, created.next_run_at);
      assert.deepEqual(await jobs(s, t), []);
    });

    it('a tick that cannot be recorded stays owed, and holds back no other tick', async () => {
      const s = server();
      const stuck = await createTenant(s);
      const other = await createTenant(s);
      const action = { type: 'run_job', assignment_key: 'default', service_id: 'service-1' };
      await put(s, stuck, 'stuck', { cron: YEARLY, action });
      await put(s, other, 'other', { cron: YEARLY, action });
      // The stuck one is the more overdue, so it comes first.
      await makeDue(s, stuck, 'stuck', '2 hours');
      await makeDue(s, other, 'other', '1 hour');
      const undo = await refuseWrites(s, stuck, 'schedules');
      const { fired, unfired } = await fireDueSchedules(s.ctx, 100).finally(undo);
      assert.deepEqual(
        unfired.map((tick) => tick.schedule.name),
        ['stuck'],
      );
      assert.match(String(unfired[0]?.error), /refused by the test/);
      assert.ok(fired.some((tick) => tick.schedule.name === 'other' && tick.outcome === 'fired'));
      assert.deepEqual(await jobs(s, stuck), [], 'its job was rolled back with it');
      assert.equal((await fire(s, stuck))[0]?.outcome, 'fired', 'still owed, and fires later');
    });
  });

  describe('exactly once', () => {
    it('ticks missed while nothing ran fire once, and the first tick after now is owed', async () => {
      const s = server();
      const t = await createTenant(s);
      const action = { type: 'run_job', assignment_key: 'default', service_id: 'service-1' };
      await put(s, t, 'minutely', { cron: '* * * * *', action });
      // Sixty ticks were missed.
      await makeDue(s, t, 'minutely', '1 hour');
      const lateBefore = await counter(s, 'pie_schedule_ticks_late_total');

      const ticks = await fire(s, t);
      assert.equal(ticks.length, 1);
      assert.equal(ticks[0]?.caughtUp, true);
      assert.equal((await jobs(s, t)).length, 1, 'one job, not sixty');
      assert.equal(await counter(s, 'pie_schedule_ticks_late_total'), lateBefore + 1);
      assertFuture((await get(s, t, 'minutely')).next_run_at, 'next_run_at', 60_000);
      assert.deepEqual(await fire(s, t), [], 'no backlog left');
      assertStatus(await s.call('DELETE', `${t.domainPath}/schedules/minutely`), 204);
    });

    it('five turns at once fire a due tick once', async () => {
      const s = server();
      const t = await createTenant(s);
      const action = { type: 'run_job', assignment_key: 'default', service_id: 'service-1' };
      await put(s, t, 'contended', { cron: YEARLY, action });
      await makeDue(s, t, 'contended');
      const turns = await Promise.all(Array.from({ length: 5 }, () => fire(s, t)));
      assert.equal(turns.flat().length, 1, 'one turn fired it');
      assert.equal((await jobs(s, t)).length, 1);
    });

    it('paused owes no tick; resumed, it owes the first tick after now and no backlog', async () => {
      const s = server();
      const t = await createTenant(s);
      const action = { type: 'run_job', assignment_key: 'default', service_id: 'service-1' };
      const path = `${t.domainPath}/schedules/pausing`;
      await put(s, t, 'pausing', { cron: '* * * * *', action });
      await makeDue(s, t, 'pausing', '10 minutes');
      const paused = expectBody<Schedule>(await s.put(path, { status: 'paused' }), 200);
      assert.equal(paused.next_run_at, null);
      assert.deepEqual(await fire(s, t), [], 'a paused schedule does not fire');

      const resumed = expectBody<Schedule>(await s.put(path, { status: 'active' }), 200);
      assertFuture(resumed.next_run_at, 'next_run_at after resuming', 60_000);
      assert.deepEqual(await fire(s, t), [], 'the ticks missed while paused do not fire');
      assert.deepEqual(await jobs(s, t), []);
      assertStatus(await s.call('DELETE', path), 204);
    });
  });

  describe('the scheduler service', () => {
    it('fires ticks as they come, by itself, and stops with its tick committed', async () => {
      const s = server();
      const t = await createTenant(s);
      const action = { type: 'run_job', assignment_key: 'default', service_id: 'service-1' };
      await put(s, t, 'by-itself', { cron: '* * * * * *', action });
      const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined };
      const errors: unknown[] = [];
      const scheduler = new SchedulerService(s.ctx, 50, {
        ...quiet,
        error: (...args: unknown[]) => errors.push(args),
      });
      scheduler.start();
      try {
        const started = await waitForValue(
          'two ticks fired by the service',
          async () => ((await jobs(s, t)).length >= 2 ? jobs(s, t) : undefined),
          10_000,
        );
        assert.ok(started.every((job) => job.service_id === 'service-1'));
      } finally {
        await scheduler.stop();
      }
      const stopped = (await jobs(s, t)).length;
      const schedule = await get(s, t, 'by-itself');
      assert.equal(schedule.last_job_id, (await jobs(s, t))[0]?.job_id, 'the newest job');
      assert.equal(schedule.last_error, null);
      assert.deepEqual(errors, []);
      await sleep(1200);
      assert.equal((await jobs(s, t)).length, stopped, 'no tick fired once it stopped');
      assertStatus(await s.call('DELETE', `${t.domainPath}/schedules/by-itself`), 204);
    });

    it('polls every PIE_SCHEDULE_POLL_MS, 250 by default; 0 leaves it off', () => {
      assert.equal(loadConfig({}).schedulePollMs, 250);
      assert.equal(loadConfig({ PIE_SCHEDULE_POLL_MS: '0' }).schedulePollMs, 0);
      assert.throws(() => loadConfig({ PIE_SCHEDULE_POLL_MS: '-1' }), /PIE_SCHEDULE_POLL_MS/);
    });
  });
});
