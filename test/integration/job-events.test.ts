import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { expectBody } from '../helpers/assertions.js';
import { completePath, createTenant, runJob, type Tenant } from '../helpers/fixtures.js';
import { SseClient } from '../helpers/sse-client.js';
import { JobEventLog, type JobEventSink } from '../../src/lifecycle/job-event-log.js';
import { RetentionService } from '../../src/services/retention.service.js';
import { testBackends } from '../helpers/backends.js';
import { pieEnv, startPie } from '../helpers/pie-process.js';
import { describeOnEachBackend, errorMessage, TestServer } from '../helpers/test-server.js';

/** The events the log holds for a domain, in order: what every stream must agree with. */
async function logged(server: TestServer, tenant: Tenant, after = 0) {
  // Numbered now rather than a moment later by the server: the answers are in the log already.
  await server.db.query('select pie_sequence_job_events(100000)');
  const { rows } = await server.db.query<{ position: string; job_id: string; status: string }>(
    `select position::text as position, job_id, status from job_events
     where client_id = $1 and domain_id = $2 and position > $3 order by job_events.position`,
    [tenant.clientId, tenant.domainId, after],
  );
  return rows.map((row) => [row.position, row.job_id, row.status]);
}

const seen = (client: SseClient) =>
  client.jobEvents.map((event) => [event.id, event.data.job_id, event.data.status]);

function open(
  server: TestServer,
  tenant: Tenant,
  headers: Record<string, string> = {},
  query = '',
) {
  return SseClient.open(
    `${server.url}${tenant.domainPath}/events${query}`,
    server.adminToken,
    headers,
  );
}

describeOnEachBackend(
  'job event stream',
  (server) => {
    it('streams every change of the domain in order, as text/event-stream', async () => {
      const tenant = await createTenant(server());
      const client = await open(server(), tenant);
      try {
        assert.equal(client.status, 200);
        assert.match(String(client.headers['content-type']), /^text\/event-stream/);
        const first = await runJob(server(), tenant, { input: { n: 1 } });
        const second = await runJob(server(), tenant, { input: { n: 2 } });
        expectBody(await server().post(`${tenant.domainPath}/jobs/${second}/cancel`), 200);
        expectBody(
          await server().post(completePath(tenant, first), { status: 'success', output: {} }),
          200,
        );
        await client.until(() => client.jobEvents.length >= 4);
        assert.deepEqual(
          client.jobEvents.map((event) => [
            event.data.job_id,
            event.data.status,
            event.data.previous_status,
          ]),
          [
            [first, 'queued', null],
            [second, 'queued', null],
            [second, 'cancelled', 'queued'],
            [first, 'success', 'queued'],
          ],
        );
        const ids = client.jobEvents.map((event) => Number(event.id));
        assert.deepEqual(
          ids,
          [...ids].sort((a, b) => a - b),
          'ids increase',
        );
        const data = client.jobEvents[0]!.data;
        assert.equal(data.job_type, 'inference');
        assert.equal(data.service_id, 'service-1');
        assert.equal(data.attempt, 0);
        assert.match(data.updated_at, /^\d{4}-\d\d-\d\dT/);
        assert.deepEqual(seen(client), await logged(server(), tenant));
      } finally {
        client.close();
      }
    });

    it('resumes after Last-Event-ID with exactly the missed events, by header or parameter', async () => {
      const tenant = await createTenant(server());
      const first = await open(server(), tenant);
      const a = await runJob(server(), tenant);
      const b = await runJob(server(), tenant);
      await first.until(() => first.jobEvents.length >= 2);
      first.close();
      const lastId = first.jobEvents[1]!.id!;
      expectBody(await server().post(`${tenant.domainPath}/jobs/${a}/cancel`), 200);
      const c = await runJob(server(), tenant);
      expectBody(
        await server().post(completePath(tenant, b), { status: 'failure', error: {} }),
        200,
      );

      const expected = await logged(server(), tenant, Number(lastId));
      assert.deepEqual(
        expected.map(([, job, status]) => [job, status]),
        [
          [a, 'cancelled'],
          [c, 'queued'],
          [b, 'failure'],
        ],
      );
      for (const resumed of [
        await open(server(), tenant, { 'last-event-id': lastId }),
        await open(server(), tenant, {}, `?last_event_id=${lastId}`),
      ]) {
        try {
          await resumed.until(() => resumed.jobEvents.length >= 3);
          // A little longer: nothing more (no duplicate) may follow.
          await new Promise((resolve) => setTimeout(resolve, 300));
          assert.deepEqual(seen(resumed), expected);
        } finally {
          resumed.close();
        }
      }
      // From 0 (the log's start): the whole history of the domain.
      const all = await open(server(), tenant, { 'last-event-id': '0' });
      try {
        await all.until(() => all.jobEvents.length >= 5);
        assert.deepEqual(seen(all), await logged(server(), tenant));
      } finally {
        all.close();
      }
    });

    it('answers a Last-Event-ID it cannot resume from with a reset, and a malformed one with 400', async () => {
      const tenant = await createTenant(server());
      await runJob(server(), tenant);
      // Numbered now, rather than by the process a moment later: the head is final.
      const { rows } = await server().db.query<{ head: string }>(
        'select pie_sequence_job_events(1000)::text as head',
      );
      const head = Number(rows[0]!.head);
      // Retention deleted through the head: a client at 0 missed events it cannot get back.
      await server().db.query('update job_event_log set pruned_through = $1', [head]);
      try {
        for (const lastId of ['0', String(head + 1000)]) {
          const client = await open(server(), tenant, { 'last-event-id': lastId });
          try {
            await client.until(() => client.events.length >= 1);
            assert.equal(client.events[0]!.event, 'reset');
            // The head, or past it if other domains' events were numbered meanwhile.
            assert.ok(Number(client.events[0]!.id) >= head);
            assert.equal(client.events[0]!.data.last_event_id, client.events[0]!.id);
            const job = await runJob(server(), tenant);
            await client.until(() => client.jobEvents.length >= 1);
            assert.equal(client.jobEvents[0]!.data.job_id, job);
          } finally {
            client.close();
          }
        }
      } finally {
        await server().db.query('update job_event_log set pruned_through = 0');
      }
      for (const bad of ['abc', '-1', '1.5', '99999999999999999']) {
        const client = await open(server(), tenant, { 'last-event-id': bad });
        assert.equal(client.status, 400, bad);
        assert.equal(JSON.parse(client.body).success, false);
      }
    });

    it("refuses another client's token and unknown domains, and never leaks another domain's events", async () => {
      const tenant = await createTenant(server());
      const other = await createTenant(server());
      const otherToken = await server().token(['read'], { clients: [other.clientId] });
      const refused = await SseClient.open(
        `${server().url}${tenant.domainPath}/events`,
        otherToken,
      );
      assert.equal(refused.status, 403);
      assert.match(
        errorMessage({ status: 403, headers: new Headers(), body: JSON.parse(refused.body) }),
        /client/,
      );
      const missing = await SseClient.open(
        `${server().url}/v2/clients/${tenant.clientId}/domains/nowhere/events`,
        server().adminToken,
      );
      assert.equal(missing.status, 404);
      const unauthenticated = await fetch(`${server().url}${tenant.domainPath}/events`);
      assert.equal(unauthenticated.status, 401);

      // A read token of its own client streams; the other client's work never reaches it.
      const ownToken = await server().token(['read'], { clients: [tenant.clientId] });
      const client = await SseClient.open(`${server().url}${tenant.domainPath}/events`, ownToken);
      const secondDomain = `/v2/clients/${tenant.clientId}/domains/elsewhere`;
      expectBody(await server().put(secondDomain, {}), 201);
      try {
        for (let i = 0; i < 3; i += 1) await runJob(server(), other);
        const mine = await runJob(server(), tenant);
        await client.until(() => client.jobEvents.length >= 1);
        await new Promise((resolve) => setTimeout(resolve, 300));
        assert.deepEqual(
          client.jobEvents.map((event) => event.data.job_id),
          [mine],
        );
      } finally {
        client.close();
      }
    });

    it('is pruned from its start by retention, which moves the resume horizon', async () => {
      const tenant = await createTenant(server());
      await runJob(server(), tenant);
      await runJob(server(), tenant);
      await server().db.query('select pie_sequence_job_events(100000)');
      // Everything so far is two hours old; one newer event stays.
      await server().db.query("update job_events set created_at = now() - interval '2 hours'");
      await runJob(server(), tenant);
      const { rows: before } = await server().db.query<{ head: string }>(
        'select pie_sequence_job_events(100000)::text as head',
      );
      const service = new RetentionService(
        server().db,
        { intervalMs: 60_000, jobsMaxAgeS: undefined, eventsMaxAgeS: 3600, batch: 5 },
        { debug: () => undefined, error: () => undefined },
        server().ctx.metrics,
      );
      const turn = await service.runOnce();
      const { rows } = await server().db.query<{ pruned: string; left: string; min: string }>(
        `select (select pruned_through::text from job_event_log) as pruned,
         (select count(*)::text from job_events) as left,
         (select min(position)::text from job_events) as min`,
      );
      assert.ok(turn.deleted.events > 0);
      assert.equal(rows[0]!.left, '1', 'only the recent event is kept');
      assert.equal(Number(rows[0]!.pruned), Number(before[0]!.head) - 1);
      assert.equal(Number(rows[0]!.min), Number(before[0]!.head));
    });

    it('orders positions as numbers, not as text, across a power of ten', async () => {
      const tenant = await createTenant(server());
      const live = await open(server(), tenant);
      try {
        const { rows } = await server().db.query<{ head: string }>(
          'select pie_sequence_job_events(100000)::text as head',
        );
        const head = Number(rows[0]!.head);
        // Enough events that their positions gain a digit (as text, "100" sorts before "99").
        const count = 10 ** String(head).length - head + 5;
        await server().db.query(
          `insert into job_events (client_id, domain_id, job_id, status, job_type, model_id,
             model_version, attempt, updated_at)
           select $1, $2, lpad(n::text, 12, '8'), 'queued', 'inference', 'm', '1', 0, now()
           from generate_series(1, $3::integer) as n`,
          [tenant.clientId, tenant.domainId, count],
        );
        const expected = (await logged(server(), tenant, head)).map(([position]) => position);
        assert.equal(expected.length, count);
        assert.deepEqual(
          expected,
          expected
            .map(Number)
            .sort((a, b) => a - b)
            .map(String),
          'the log itself is read in order',
        );
        // The process's reader (live) and a stream catching up from the head agree with it.
        await live.until(() => live.jobEvents.length >= count);
        const resumed = await open(server(), tenant, { 'last-event-id': String(head) });
        try {
          await resumed.until(() => resumed.jobEvents.length >= count);
          await new Promise((resolve) => setTimeout(resolve, 200));
          for (const client of [live, resumed]) {
            assert.deepEqual(
              client.jobEvents.map((event) => event.id),
              expected,
            );
          }
        } finally {
          resumed.close();
        }
      } finally {
        live.close();
      }
    });

    it('sends a keep-alive comment on an idle stream', async () => {
      const tenant = await createTenant(server());
      const client = await open(server(), tenant);
      try {
        await client.until(() => client.comments >= 1, 5000);
      } finally {
        client.close();
      }
    });
  },
  undefined,
  undefined,
  { events: { heartbeatS: 1, maxBufferBytes: 64 * 1024 } },
);

describeOnEachBackend(
  'job event stream: a consumer that stops reading',
  (server) => {
    it('is cut off once its unsent events pass the limit, and can resume after', async () => {
      const tenant = await createTenant(server());
      const client = await open(server(), tenant);
      client.pause();
      const cutBefore = (await server().ctx.metrics.eventStreamsCutOff.get()).values[0]?.value ?? 0;
      const { rows } = await server().db.query<{ head: string }>(
        'select head::text as head from job_event_log',
      );
      const from = rows[0]!.head;
      // 60,000 events (about 15 MB as text) for the domain, written as the triggers write them:
      // far more than the socket's buffers and the 64 KiB limit.
      await server().db.query(
        `insert into job_events (client_id, domain_id, job_id, status, job_type, model_id,
           model_version, attempt, updated_at)
         select $1, $2, lpad(n::text, 12, '9'), 'queued', 'inference', 'm', '1', 0, now()
         from generate_series(1, 60000) as n`,
        [tenant.clientId, tenant.domainId],
      );
      await server().db.query('select pie_sequence_job_events(100000)');
      // The server closes it (a paused client cannot notice until it reads again).
      const cutOff = async () =>
        (await server().ctx.metrics.eventStreamsCutOff.get()).values[0]?.value ?? 0;
      const deadline = Date.now() + 20_000;
      while ((await cutOff()) === cutBefore && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      assert.equal(await cutOff(), cutBefore + 1);
      assert.equal(server().ctx.eventLog.open, 0);
      // Reading again, it finds the connection closed, having been sent only part of the events.
      client.resume();
      await client.until(() => client.ended, 10_000);
      assert.ok(client.jobEvents.length < 60_000, `${client.jobEvents.length} events arrived`);
      // The log kept the events: a reconnect from the last id it got continues.
      const lastId = client.jobEvents.at(-1)?.id ?? from;
      const again = await open(server(), tenant, { 'last-event-id': lastId });
      try {
        await again.until(() => again.jobEvents.length >= 1);
        assert.equal(Number(again.jobEvents[0]!.id), Number(lastId) + 1);
      } finally {
        again.close();
      }
    });
  },
  undefined,
  undefined,
  { events: { heartbeatS: 30, maxBufferBytes: 64 * 1024 } },
);

/** Writes `count` events for the tenant's domain as the triggers write them, and numbers them. */
async function writeEvents(server: TestServer, tenant: Tenant, count: number, from: number) {
  await server.db.query(
    `insert into job_events (client_id, domain_id, job_id, status, job_type, model_id,
       model_version, attempt, updated_at)
     select $1, $2, lpad(n::text, 12, '8'), 'queued', 'inference', 'm', '1', 0, now()
     from generate_series($3::int, $3::int + $4::int - 1) as n`,
    [tenant.clientId, tenant.domainId, from, count],
  );
  await server.db.query('select pie_sequence_job_events(100000)');
}

async function logHead(server: TestServer): Promise<number> {
  const { rows } = await server.db.query<{ head: string }>(
    'select head::text as head from job_event_log',
  );
  return Number(rows[0]!.head);
}

// The log's reader reads only when asked (no poll to speak of), so that it can be left far
// behind the log, as it is under a burst or after its last stream closed.
describeOnEachBackend(
  'job event stream: joining while the reader is far behind',
  (server) => {
    it('neither cuts off a stream that catches up nor one that starts from now', async () => {
      // Someone follows another domain: the reader keeps its place, behind what comes next.
      const bystander = await open(server(), await createTenant(server()));
      const tenant = await createTenant(server());
      try {
        const before = await logHead(server());
        await writeEvents(server(), tenant, 15_000, 1);
        // Catching up from before the burst while the reader has not read it either.
        const catching = await open(server(), tenant, { 'last-event-id': String(before) });
        try {
          await catching.until(() => catching.jobEvents.length >= 15_000 || catching.ended);
          const ids = catching.jobEvents.map((event) => Number(event.id));
          assert.equal(ids.length, 15_000, `the stream ended: ${catching.ended}`);
          assert.equal(ids[0], before + 1);
          assert.ok(
            ids.every((id, i) => i === 0 || id === ids[i - 1]! + 1),
            'in order, once',
          );
          // Another burst, then a stream from now on while the reader is behind it again.
          const middle = await logHead(server());
          await writeEvents(server(), tenant, 15_000, 15_001);
          const fromNow = await open(server(), tenant);
          try {
            // "From now" is where the stream stands once it is set up: only then is it certain
            // that a job created next comes after it.
            const deadline = Date.now() + 10_000;
            while (server().ctx.eventLog.live < 3 && Date.now() < deadline) {
              await new Promise((resolve) => setTimeout(resolve, 20));
            }
            assert.equal(server().ctx.eventLog.live, 3, 'every stream follows live');
            const x = await runJob(server(), tenant);
            await fromNow.until(() => fromNow.jobEvents.length >= 1 || fromNow.ended);
            assert.deepEqual(
              fromNow.jobEvents.map((event) => event.data.job_id),
              [x],
              'only what came after it opened',
            );
            // The stream that caught up went on live through the second burst.
            await catching.until(() => catching.jobEvents.at(-1)?.data.job_id === x);
            assert.equal(catching.jobEvents.length, 30_001);
            assert.equal(Number(catching.jobEvents[15_000]!.id), middle + 1);
          } finally {
            fromNow.close();
          }
        } finally {
          catching.close();
        }
      } finally {
        bystander.close();
      }
    });
  },
  undefined,
  undefined,
  { events: { pollMs: 60_000 } },
);

// Two transactions committing out of order, and a second PIE process, need a server: on PGlite
// one connection runs one transaction at a time, and one process serves the database.
const SECRET = 'a-test-secret-shared-by-two-processes-0123456789';
for (const backend of testBackends().filter((each) => each.name === 'postgres')) {
  describe(`job event stream across transactions and processes [${backend.name}]`, () => {
    let server: TestServer;
    before(async () => {
      // No poll to speak of: what this process did not make itself reaches it by NOTIFY.
      server = await TestServer.start(
        backend,
        { kind: 'secret', secret: new TextEncoder().encode(SECRET) },
        undefined,
        { events: { pollMs: 60_000 } },
      );
    });
    after(async () => {
      await server.close();
    });

    it('loses and repeats nothing when a transaction that wrote first commits last', async () => {
      const tenant = await createTenant(server);
      const client = await open(server, tenant);
      const held = new pg.Client({ connectionString: server.databaseUrl });
      await held.connect();
      try {
        const x = await runJob(server, tenant);
        await client.until(() => client.jobEvents.length >= 1);
        const xQueued = client.jobEvents[0]!.id!;
        // T1 changes x and stays open; T2 (the API) queues y and commits first.
        await held.query('begin');
        await held.query(
          "update jobs set status = 'cancelled', finished_at = now() where job_id = $1",
          [x],
        );
        const y = await runJob(server, tenant);
        await client.until(() => client.jobEvents.length >= 2);
        const yQueued = client.jobEvents[1]!.id!;
        assert.equal(client.jobEvents[1]!.data.job_id, y);
        await held.query('commit');
        // As the process that made the change would: number it, and tell the others.
        await held.query('select pie_sequence_job_events(1000)');
        await held.query("select pg_notify('pie_job_events', '')");
        await client.until(() => client.jobEvents.length >= 3);
        assert.deepEqual(
          client.jobEvents.map((event) => [event.data.job_id, event.data.status]),
          [
            [x, 'queued'],
            [y, 'queued'],
            [x, 'cancelled'],
          ],
        );
        // The scenario was provoked: x's change was written before y's, yet numbered after it.
        const { rows } = await server.db.query<{ job_id: string; seq: string; position: string }>(
          `select job_id, seq::text as seq, position::text as position from job_events
           where client_id = $1 and position > $2 order by job_events.position`,
          [tenant.clientId, xQueued],
        );
        assert.deepEqual(
          rows.map((row) => row.job_id),
          [y, x],
        );
        assert.ok(Number(rows[1]!.seq) < Number(rows[0]!.seq), 'x was written first');
        for (const [after, expected] of [
          [
            xQueued,
            [
              [y, 'queued'],
              [x, 'cancelled'],
            ],
          ],
          [yQueued, [[x, 'cancelled']]],
        ] as const) {
          const resumed = await open(server, tenant, { 'last-event-id': after });
          try {
            await resumed.until(() => resumed.jobEvents.length >= expected.length);
            await new Promise((resolve) => setTimeout(resolve, 300));
            assert.deepEqual(
              resumed.jobEvents.map((event) => [event.data.job_id, event.data.status]),
              expected,
            );
          } finally {
            resumed.close();
          }
        }
      } finally {
        client.close();
        await held.end();
      }
    });

    it('streams the changes another PIE process makes on the same database', async () => {
      const tenant = await createTenant(server);
      const client = await open(server, tenant);
      const other = await startPie(
        pieEnv({
          DATABASE_URL: server.databaseUrl!,
          PIE_JWT_SECRET: SECRET,
          PIE_DISPATCH: 'off',
          PIE_SHUTDOWN_GRACE_S: '0',
        }),
      );
      try {
        const started = performance.now();
        const response = await fetch(
          `${other.url}${tenant.domainPath}/service/service-1/assignments/default/jobs`,
          {
            method: 'POST',
            headers: {
              authorization: `Bearer ${server.adminToken}`,
              'content-type': 'application/json',
            },
            body: '{}',
          },
        );
        assert.equal(response.status, 202);
        const { job_id } = (await response.json()) as { job_id: string };
        await client.until(() => client.jobEvents.length >= 1);
        assert.equal(client.jobEvents[0]!.data.job_id, job_id);
        // Told by the other process's NOTIFY: this one's poll is a minute away.
        assert.ok(performance.now() - started < 5000);
      } finally {
        client.close();
        other.child.kill('SIGTERM');
        await other.exited;
      }
    });
  });
}

// A consumer that reconnects the moment its stream ends (as a browser's EventSource does,
// on the same kept-alive connection) sends its request while the server is closing; that
// stream must end too, or the close waits for it forever (it hung a CI run).
for (const backend of testBackends()) {
  describe(`job event stream while the server closes [${backend.name}]`, () => {
    it('ends the streams of consumers that reconnect during the close, and the close finishes', async () => {
      const server = await TestServer.start(backend);
      const tenant = await createTenant(server);
      const agent = new http.Agent({ keepAlive: true });
      let opened = 0;
      let ended = 0;
      const connect = () => {
        const request = http.get(`${server.url}${tenant.domainPath}/events`, {
          agent,
          headers: { authorization: `Bearer ${server.adminToken}` },
        });
        request.on('error', () => undefined);
        request.on('response', (response) => {
          if (response.statusCode === 200) opened += 1;
          response.resume();
          // 'close' rather than 'end': a connection closed with the server ends without one.
          response.once('close', () => {
            ended += 1;
            if (ended < 20) connect();
          });
        });
      };
      try {
        connect();
        const deadline = Date.now() + 10_000;
        while (server.ctx.eventLog.open === 0 && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        assert.equal(server.ctx.eventLog.open, 1);
        let timer: NodeJS.Timeout | undefined;
        const closed = await Promise.race([
          server.close().then(() => 'closed'),
          new Promise<string>((resolve) => (timer = setTimeout(() => resolve('hung'), 10_000))),
        ]);
        clearTimeout(timer);
        assert.equal(closed, 'closed', `${opened} streams opened, ${ended} ended`);
        // The client hears of the last end a moment after the server finished closing.
        const heard = Date.now() + 5000;
        while (ended < opened && Date.now() < heard) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        assert.equal(ended, opened, 'every stream opened was ended');
      } finally {
        agent.destroy();
      }
    });

    it('ends at once a stream that starts after the log closed', async () => {
      const server = await TestServer.start(backend);
      try {
        const log = await JobEventLog.open(server.db, { pollMs: 60_000 });
        await log.close();
        let ended = false;
        const sink: JobEventSink = {
          send: () => true,
          reset: () => true,
          drained: async () => true,
          end: () => (ended = true),
          cutOff: () => assert.fail('not cut off'),
        };
        const stop = await log.stream('client-x', 'domain-x', undefined, sink);
        stop();
        assert.equal(ended, true);
        assert.equal(log.open, 0);
      } finally {
        await server.close();
      }
    });
  });
}
