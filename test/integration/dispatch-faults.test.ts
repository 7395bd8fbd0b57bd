import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { issueToken } from '../../src/auth/token-issuer.js';
import { testBackends } from '../helpers/backends.js';
import { CompletingReceiver, RECEIVER_SECRET } from '../helpers/completing-receiver.js';
import {
  api,
  apiOk,
  countJobs,
  JWT_SECRET,
  pieEnvironment,
  waitUntilSettled,
} from '../helpers/fault-harness.js';
import { startPie, type PieProcess } from '../helpers/pie-process.js';
import { freePort } from '../helpers/loopback.js';
import { TEST_JWT } from '../helpers/test-server.js';
import { waitFor } from '../helpers/wait.js';

/**
 * Dispatch must lose no job and hand no attempt over twice, even with a `pie serve` process
 * killed mid-dispatch and restarted, or several processes sharing one PostgreSQL. Real
 * processes here; jobs go to an http handler that keeps a ledger of every delivery and
 * completes each job through its callback.
 */

/** A tenant with `services` services whose default version pushes to `receiverUrl`. */
async function setUp(url: string, token: string, receiverUrl: string, services: number) {
  const domain = '/v2/clients/faults/domains/d1';
  for (const [route, body] of [
    ['/v2/clients/faults', {}],
    [domain, {}],
    ['/v2/models/m1', {}],
    [
      '/v2/models/m1/versions/1',
      { features: [], handler: { type: 'http', url: receiverUrl, secret: RECEIVER_SECRET } },
    ],
  ] as const) {
    await apiOk(url, token, 'PUT', route, body);
  }
  // Services in parallel batches: the set-up is not what is measured.
  const ids = Array.from({ length: services }, (_, i) => `s${String(i).padStart(5, '0')}`);
  for (let i = 0; i < ids.length; i += 50) {
    await Promise.all(
      ids.slice(i, i + 50).map((id) => api(url, token, 'PUT', `${domain}/services/${id}`, {})),
    );
  }
  const assigned = await api(url, token, 'PUT', `${domain}/assignments/default`, {
    model_id: 'm1',
    model_version: '1',
  });
  assert.equal(assigned.status, 201, JSON.stringify(assigned.body));
  const init = await api(url, token, 'POST', `${domain}/services/init`);
  assert.equal(init.status, 202, JSON.stringify(init.body));
  return { domain, jobs: init.body.dispatched_services.length as number };
}

/** How long the jobs may take to settle once set up (or once PIE is back). */
const SETTLE_MS = 120_000;

function ledgerSummary(receiver: CompletingReceiver) {
  const attempts = new Map<string, number[]>();
  for (const entry of receiver.ledger) {
    attempts.set(entry.job_id, [...(attempts.get(entry.job_id) ?? []), entry.attempt]);
  }
  const repeatedAttempt = [...attempts.entries()].filter(
    ([, list]) => new Set(list).size !== list.length,
  );
  return { jobs: attempts.size, repeatedAttempt };
}

const adminToken = () =>
  issueToken(new TextEncoder().encode(JWT_SECRET), TEST_JWT, {
    subject: 'faults',
    scopes: ['admin'],
    ttl: '1h',
  });

for (const backend of testBackends()) {
  describe(`dispatch faults [${backend.name}]`, () => {
    it('a server killed with SIGKILL mid-dispatch and restarted loses no job', async () => {
      const receiver = new CompletingReceiver(100);
      await receiver.start();
      const port = String(await freePort());
      const setting = await pieEnvironment(backend.name, { PIE_PORT: port, PIE_LEASE_S: '5' });
      const token = await adminToken();
      let pie: PieProcess | undefined = await startPie(setting.env);
      try {
        const { domain, jobs } = await setUp(pie.url, token, receiver.url, 150);
        await waitFor('20 deliveries', () => receiver.ledger.length >= 20, SETTLE_MS, 10);
        pie.child.kill('SIGKILL');
        await pie.exited;
        const deliveredBeforeKill = receiver.ledger.length;
        assert.ok(deliveredBeforeKill < jobs, 'killed while work remained');

        pie = await startPie(setting.env);
        await waitUntilSettled(pie.url, token, domain, SETTLE_MS);
        assert.equal(await countJobs(pie.url, token, domain, ['success']), jobs);
        const ledger = ledgerSummary(receiver);
        assert.equal(ledger.jobs, jobs, 'every job reached the handler');
        assert.deepEqual(ledger.repeatedAttempt, [], 'no attempt delivered twice');
        assert.equal(receiver.badSignatures, 0);
      } finally {
        pie?.child.kill('SIGTERM');
        await pie?.exited;
        await receiver.close();
        await setting.dispose();
      }
    });
  });
}

// Several processes need a shared server: this runs where DATABASE_URL names one.
for (const backend of testBackends().filter((each) => each.name === 'postgres')) {
  describe('three pie serve processes on one PostgreSQL', () => {
    it('hand over 5,000 jobs, each exactly once per attempt, none lost', async () => {
      const receiver = new CompletingReceiver();
      await receiver.start();
      const setting = await pieEnvironment(backend.name, {});
      const token = await adminToken();
      // All three are stopped if any fails to start: one left running keeps the file alive.
      const starting = await Promise.allSettled([1, 2, 3].map(() => startPie(setting.env)));
      const processes = starting.flatMap((each) =>
        each.status === 'fulfilled' ? [each.value] : [],
      );
      const failed = starting.find((each) => each.status === 'rejected');
      if (failed !== undefined) {
        for (const pie of processes) pie.child.kill('SIGKILL');
        throw failed.reason;
      }
      try {
        const started = Date.now();
        const { domain, jobs } = await setUp(processes[0]!.url, token, receiver.url, 5000);
        assert.equal(jobs, 5000);
        await waitUntilSettled(processes[1]!.url, token, domain, SETTLE_MS);
        const seconds = (Date.now() - started) / 1000;
        assert.equal(await countJobs(processes[2]!.url, token, domain, ['success']), jobs);
        const ledger = ledgerSummary(receiver);
        assert.equal(ledger.jobs, jobs, 'every job reached the handler');
        assert.deepEqual(ledger.repeatedAttempt, [], 'no attempt handed over twice');
        assert.equal(receiver.ledger.length, jobs, 'no retries were needed');
        console.log(
          `# 3 processes: ${jobs} jobs set up, dispatched and completed in ${seconds.toFixed(1)} s`,
        );
      } finally {
        for (const pie of processes) pie.child.kill('SIGTERM');
        await Promise.all(processes.map((pie) => pie.exited));
        await receiver.close();
        await setting.dispose();
      }
    });
  });
}
