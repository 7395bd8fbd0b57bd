import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertError, assertIso, assertStatus, expectBody } from '../helpers/assertions.js';
import { createTenant, uniqueId, type Tenant } from '../helpers/fixtures.js';
import { allPageItems } from '../helpers/paging.js';
import type { Schedule } from '../helpers/schedules.js';
import { describeOnEachBackend, type TestServer } from '../helpers/test-server.js';

const NIGHTLY = { cron: '30 2 * * *', action: { type: 'services_init' } };

async function put(s: TestServer, t: Tenant, name: string, body: unknown, status: 200 | 201) {
  return expectBody<Schedule>(await s.put(`${t.domainPath}/schedules/${name}`, body), status);
}

describeOnEachBackend('schedules: writing and reading', (server) => {
  describe('PUT, GET, list and DELETE', () => {
    it('PUT creates a schedule: 201, defaults filled in, the first tick after now owed', async () => {
      const s = server();
      const t = await createTenant(s);
      const before = Date.now();
      const created = await put(s, t, 'nightly', NIGHTLY, 201);
      assert.deepEqual(
        { ...created, next_run_at: 'tick', created_at: 'at', updated_at: 'at' },
        {
          client_id: t.clientId,
          domain_id: t.domainId,
          name: 'nightly',
          cron: '30 2 * * *',
          timezone: 'UTC',
          action: { type: 'services_init' },
          priority: null,
          status: 'active',
          next_run_at: 'tick',
          last_run_at: null,
          last_batch_id: null,
          last_job_id: null,
          last_error: null,
          created_at: 'at',
          updated_at: 'at',
        },
      );
      assertIso(created.next_run_at, 'next_run_at');
      const next = new Date(created.next_run_at!);
      assert.equal(next.toISOString().slice(11), '02:30:00.000Z');
      assert.ok(next.getTime() > before && next.getTime() <= before + 86_400_000, 'within a day');
      assert.deepEqual(
        expectBody<Schedule>(await s.get(`${t.domainPath}/schedules/nightly`), 200),
        created,
      );
    });

    it('a run_job action is stored whole: service, job type (inference by default), input', async () => {
      const s = server();
      const t = await createTenant(s);
      const created = await put(
        s,
        t,
        'every-second',
        {
          cron: '* * * * * *',
          timezone: 'Australia/Adelaide',
          action: { type: 'run_job', assignment_key: 'default', service_id: 'service-1' },
          priority: 40,
        },
        201,
      );
      assert.deepEqual(created.action, {
        type: 'run_job',
        assignment_key: 'default',
        service_id: 'service-1',
        job_type: 'inference',
        input: {},
      });
      assert.equal(created.timezone, 'Australia/Adelaide');
      assert.equal(created.priority, 40);
      const untilTick = Date.parse(created.next_run_at!) - Date.now();
      assert.ok(untilTick > -1000 && untilTick <= 1000, `6 fields tick each second: ${untilTick}`);
      const domainJob = await put(
        s,
        t,
        'domain-job',
        { ...NIGHTLY, action: { type: 'run_job', assignment_key: 'k', input: { a: [1] } } },
        201,
      );
      assert.deepEqual(domainJob.action, {
        type: 'run_job',
        assignment_key: 'k',
        service_id: null,
        job_type: 'inference',
        input: { a: [1] },
      });
    });

    it('PUT again: 200; fields left out keep their values, and so does the tick owed', async () => {
      const s = server();
      const t = await createTenant(s);
      const created = await put(s, t, 'keep', { ...NIGHTLY, priority: 5 }, 201);
      const same = await put(s, t, 'keep', NIGHTLY, 200);
      assert.equal(same.next_run_at, created.next_run_at, 're-sending skips no tick');
      assert.equal(same.priority, 5);
      const job = { type: 'run_job', assignment_key: 'default', job_type: 'training' };
      const changed = await put(s, t, 'keep', { action: job, priority: null }, 200);
      assert.equal(changed.next_run_at, created.next_run_at, 'a new action owes the same tick');
      assert.equal(changed.cron, NIGHTLY.cron);
      assert.equal(changed.priority, null);
      assert.equal((changed.action as { job_type: string }).job_type, 'training');
      const moved = await put(s, t, 'keep', { timezone: 'Australia/Adelaide' }, 200);
      assert.notEqual(moved.next_run_at, created.next_run_at, 'another time zone, another tick');
      // 02:30 in Adelaide is 16:00 or 17:00 UTC, by daylight saving.
      assert.match(moved.next_run_at!, /T1[67]:00:00\.000Z$/);
      const hourly = await put(s, t, 'keep', { cron: '0 * * * *' }, 200);
      assert.equal(hourly.timezone, 'Australia/Adelaide', 'the time zone is kept');
      // Adelaide is 9½ or 10½ hours ahead of UTC: its hours start at half past, in UTC.
      assert.match(hourly.next_run_at!, /T\d\d:30:00\.000Z$/);
      assert.ok(Date.parse(hourly.next_run_at!) - Date.now() <= 3_600_000, 'within the hour');
    });

    it('lists in name order, page by page, filtered by status', async () => {
      const s = server();
      const t = await createTenant(s);
      for (const name of ['c-sched', 'a-sched', 'b-sched']) await put(s, t, name, NIGHTLY, 201);
      await put(s, t, 'b-sched', { status: 'paused' }, 200);
      const pages = await allPageItems<Schedule>(s, `${t.domainPath}/schedules`, { limit: 2 });
      assert.deepEqual(
        pages.map((page) => page.map((item) => item.name)),
        [['a-sched', 'b-sched'], ['c-sched']],
      );
      const paused = await allPageItems<Schedule>(s, `${t.domainPath}/schedules?status=paused`, {
        limit: 10,
      });
      assert.deepEqual(
        paused.flat().map((item) => item.name),
        ['b-sched'],
      );
      assertError(await s.get(`${t.domainPath}/schedules?cursor=nope`), 400, 'cursor');
    });

    it('DELETE removes it (204); then GET and DELETE are 404', async () => {
      const s = server();
      const t = await createTenant(s);
      await put(s, t, 'gone', NIGHTLY, 201);
      const path = `${t.domainPath}/schedules/gone`;
      assertStatus(await s.call('DELETE', path), 204);
      assertError(await s.get(path), 404, 'schedule "gone" not found');
      assertError(await s.call('DELETE', path), 404, 'schedule "gone" not found');
    });
  });

  describe('what is refused', () => {
    it('a cron or time zone that is not valid: 400 naming the problem', async () => {
      const s = server();
      const t = await createTenant(s);
      const cases: [unknown, string][] = [
        [{ ...NIGHTLY, cron: '* * * *' }, 'has 4 fields'],
        [{ ...NIGHTLY, cron: '0 0 0 1 1 * 2030' }, 'has 7 fields'],
        [{ ...NIGHTLY, cron: '@daily' }, 'has 1 field'],
        [{ ...NIGHTLY, cron: '99 * * * *' }, 'is not valid'],
        [{ ...NIGHTLY, cron: '0 0 30 2 *' }, 'never fires'],
        [{ ...NIGHTLY, timezone: 'Mars/Olympus_Mons' }, 'not an IANA time zone'],
        [{ ...NIGHTLY, timezone: '+09:30' }, 'not an IANA time zone'],
      ];
      for (const [body, problem] of cases) {
        assertError(await s.put(`${t.domainPath}/schedules/bad`, body), 400, problem);
      }
      assertError(await s.get(`${t.domainPath}/schedules/bad`), 404);
    });

    it('an action, priority or field that is not valid: 400 naming it', async () => {
      const s = server();
      const t = await createTenant(s);
      const runJob = { type: 'run_job', assignment_key: 'default' };
      const cases: [unknown, string][] = [
        [{ ...NIGHTLY, action: { type: 'retrain' } }, 'body/action'],
        [{ ...NIGHTLY, action: { type: 'run_job' } }, 'assignment_key'],
        [{ ...NIGHTLY, action: { ...runJob, service_id: 'a b' } }, 'service_id'],
        [{ ...NIGHTLY, action: { ...runJob, input: [] } }, 'input'],
        [{ ...NIGHTLY, action: { type: 'services_init', input: {} } }, 'body/action'],
        [{ ...NIGHTLY, priority: 101 }, 'body/priority'],
        [{ ...NIGHTLY, status: 'stopped' }, 'body/status'],
        [{ ...NIGHTLY, next_run_at: '2030-01-01T00:00:00Z' }, 'unknown field "next_run_at"'],
        [{ ...NIGHTLY, cron: 5 }, 'body/cron'],
      ];
      for (const [body, problem] of cases) {
        assertError(await s.put(`${t.domainPath}/schedules/bad`, body), 400, problem);
      }
      assertError(await s.put(`${t.domainPath}/schedules/a%20b`, NIGHTLY), 400, 'params/name');
    });

    it('a new schedule without its cron or action: 400 naming what is missing', async () => {
      const s = server();
      const t = await createTenant(s);
      const path = `${t.domainPath}/schedules/new`;
      assertError(await s.put(path, { cron: '* * * * *' }), 400, 'needs action');
      assertError(await s.put(path, { status: 'paused' }), 400, 'needs cron and action');
    });

    it('an action service the domain does not have: 422; a departed one is accepted', async () => {
      const s = server();
      const t = await createTenant(s);
      const action = { type: 'run_job', assignment_key: 'default', service_id: 'nobody' };
      assertError(
        await s.put(`${t.domainPath}/schedules/x`, { ...NIGHTLY, action }),
        422,
        'action service "nobody" not found',
      );
      assertStatus(await s.post(`${t.domainPath}/services/service-1/depart`), 200);
      await put(s, t, 'x', { ...NIGHTLY, action: { ...action, service_id: 'service-1' } }, 201);
    });

    it('an unknown client or domain: 404 on every route; an unknown schedule: 404', async () => {
      const s = server();
      const t = await createTenant(s);
      for (const domain of [`/v2/clients/${uniqueId('nobody')}/domains/d`, `${t.domainPath}x`]) {
        assertError(await s.put(`${domain}/schedules/x`, NIGHTLY), 404, 'not found');
        assertError(await s.get(`${domain}/schedules/x`), 404, 'not found');
        assertError(await s.get(`${domain}/schedules`), 404, 'not found');
        assertError(await s.call('DELETE', `${domain}/schedules/x`), 404, 'not found');
      }
      assertError(await s.get(`${t.domainPath}/schedules/x`), 404, 'schedule "x" not found');
    });
  });

  describe('callers', () => {
    it('read may GET and list, jobs:write may PUT and DELETE, and neither the other', async () => {
      const s = server();
      const t = await createTenant(s);
      const path = `${t.domainPath}/schedules/scoped`;
      const reader = await s.token(['read']);
      const writer = await s.token(['jobs:write']);
      assertError(await s.put(path, NIGHTLY, { token: reader }), 403, '"jobs:write"');
      await expectBody(await s.put(path, NIGHTLY, { token: writer }), 201);
      assertError(await s.get(path, { token: writer }), 403, '"read"');
      assertStatus(await s.get(path, { token: reader }), 200);
      assertStatus(await s.get(`${t.domainPath}/schedules`, { token: reader }), 200);
      assertError(await s.call('DELETE', path, { token: reader }), 403, '"jobs:write"');
      assertStatus(await s.call('DELETE', path, { token: writer }), 204);
    });

    it('a token limited to some models may read schedules but not write them (403)', async () => {
      const s = server();
      const t = await createTenant(s);
      const path = `${t.domainPath}/schedules/limited`;
      await put(s, t, 'limited', NIGHTLY, 201);
      const limited = await s.token(['jobs:write', 'read'], { models: [t.modelId] });
      assertError(await s.put(path, NIGHTLY, { token: limited }), 403, 'models claim is "*"');
      assertError(await s.call('DELETE', path, { token: limited }), 403, 'models claim is "*"');
      assertStatus(await s.get(path, { token: limited }), 200);
    });

    it("another client's token: 403 on this client's paths; this client's names are 404 under its own", async () => {
      const s = server();
      const t = await createTenant(s);
      const other = await createTenant(s);
      await put(s, t, 'mine', NIGHTLY, 201);
      const token = await s.token(['admin'], { clients: [other.clientId] });
      const mine = `${t.domainPath}/schedules/mine`;
      for (const response of [
        await s.get(mine, { token }),
        await s.get(`${t.domainPath}/schedules`, { token }),
        await s.put(mine, { status: 'paused' }, { token }),
        await s.call('DELETE', mine, { token }),
      ]) {
        assertError(response, 403, `client "${t.clientId}"`);
      }
      assertError(await s.get(`${other.domainPath}/schedules/mine`, { token }), 404);
      const stillMine = expectBody<Schedule>(await s.get(mine), 200);
      assert.equal(stillMine.status, 'active', 'nothing changed');
    });
  });
});
