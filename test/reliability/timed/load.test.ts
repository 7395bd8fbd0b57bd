import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { issueToken } from '../../../src/auth/token-issuer.js';
import type { Database } from '../../../src/db/database.js';
import { openPgliteDatabase } from '../../../src/db/pglite-database.js';
import {
  copyMigratedDataDir,
  testBackends,
  type TestBackend,
  type TestDatabase,
} from '../../helpers/backends.js';
import { apiOk } from '../../helpers/fault-harness.js';
import { describeStatuses, runLoadClient } from '../../helpers/load-client.js';
import { pieEnv, startPie, type PieProcess } from '../../helpers/pie-process.js';
import {
  SLOW_HANDLER_SECRET,
  SlowCompletingHandler,
} from '../../helpers/slow-completing-handler.js';
import { TEST_JWT } from '../../helpers/test-server.js';

/**
 * Load: 60 s at 50 connections of job creations (the run-job route) against a real
 * `pie serve`, whose jobs go to an http handler that takes 50 ms per job and then completes it
 * through PIE's completion route. Every creation must be a 202 (so no 5xx), the database must
 * hold exactly the jobs that got a 202, and once the queue drains every one of them must be
 * `success`. Rate limits and quotas are off: this measures PIE, not its limits.
 *
 * PIE_LOAD_SECONDS shortens the load for local iteration only; the suite runs 60 s.
 */

const LOAD_SECONDS = Number(process.env['PIE_LOAD_SECONDS'] ?? 60);
const CONNECTIONS = 50;
const WORK_MS = 50;
const SERVICES = 100;
/**
 * Deliveries in flight, sized as an operator would for this handler (Little's law). Each
 * delivery holds a slot for the handler's 50 ms plus PIE's claim and record round trips, about
 * 150 ms in all as measured on a 2-core machine, so the default 64 slots cap push dispatch near
 * 420 jobs/s on PostgreSQL while creations reach 1,400/s; the backlog then takes minutes to
 * drain. 256 slots dispatch about 1,500 jobs/s.
 */
const DISPATCH_CONCURRENCY = Number(process.env['PIE_LOAD_DISPATCH_CONCURRENCY'] ?? 256);
/**
 * The drain after the load: it fails when no job completes for 30 s (a lost job) or after
 * 5 min in all. Creations outpace dispatch under this load, so the backlog at the end is
 * most of the jobs; how long it takes depends on the machine, and is reported.
 */
const DRAIN = { stallMs: 30_000, maxMs: 300_000 };

const CLIENT = 'load-tenant';
const DOMAIN = `/v2/clients/${CLIENT}/domains/d1`;
const SECRET = crypto.randomBytes(32).toString('base64url');
const key = new TextEncoder().encode(SECRET);

/** A client, a domain, a version pushed to `handlerUrl`, 100 services and a default. */
async function setUpTenant(url: string, token: string, handlerUrl: string): Promise<string[]> {
  await apiOk(url, token, 'PUT', `/v2/clients/${CLIENT}`, { name: 'load' });
  await apiOk(url, token, 'PUT', DOMAIN, {});
  await apiOk(url, token, 'PUT', '/v2/models/load-model', {});
  await apiOk(url, token, 'PUT', '/v2/models/load-model/versions/1.0.0', {
    features: [
      { name: 'route', type: 'string', required: true },
      { name: 'capacity', type: 'integer', default: 60 },
    ],
    handler: { type: 'http', url: handlerUrl, secret: SLOW_HANDLER_SECRET },
  });
  const ids = Array.from({ length: SERVICES }, (_, i) => `s${String(i).padStart(3, '0')}`);
  for (let i = 0; i < ids.length; i += 25) {
    await Promise.all(
      ids.slice(i, i + 25).map((id) =>
        apiOk(url, token, 'PUT', `${DOMAIN}/services/${id}`, {
          provided_features: { route: `r-${id}` },
        }),
      ),
    );
  }
  await apiOk(url, token, 'PUT', `${DOMAIN}/assignments/default`, {
    model_id: 'load-model',
    model_version: '1.0.0',
  });
  return ids.map((id) => `${DOMAIN}/service/${id}/assignments/default/jobs`);
}

/** Where PIE keeps its data: a temp folder, and a fresh database on the server backend. */
async function environmentFor(backend: TestBackend) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pie-load-'));
  if (backend.name === 'pglite') await copyMigratedDataDir(dataDir);
  const database: TestDatabase | undefined =
    backend.name === 'postgres' ? await backend.open() : undefined;
  const env = pieEnv({
    PIE_DATA_DIR: dataDir,
    PIE_JWT_SECRET: SECRET,
    PIE_HTTP_ALLOW_HOSTS: '127.0.0.1',
    PIE_RATE_LIMIT_RPS: '0',
    PIE_QUOTA_OPEN_JOBS: '0',
    PIE_DISPATCH_CONCURRENCY: String(DISPATCH_CONCURRENCY),
    ...(database?.url === undefined ? {} : { DATABASE_URL: database.url }),
  });
  return {
    env,
    /** The database PIE used; on PGlite only once PIE has stopped (one process at a time). */
    async open(): Promise<{ db: Database; close: () => Promise<void> }> {
      if (database !== undefined) return { db: database.db, close: async () => {} };
      const db = await openPgliteDatabase(path.join(dataDir, 'pgdata'));
      return { db, close: () => db.close() };
    },
    async dispose() {
      await database?.dispose();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

async function stop(pie: PieProcess): Promise<number | null> {
  if (pie.child.exitCode === null && pie.child.signalCode === null) pie.child.kill('SIGTERM');
  return pie.exited;
}

for (const backend of testBackends()) {
  describe(`load [${backend.name}]`, () => {
    it(`${LOAD_SECONDS} s at ${CONNECTIONS} connections of job creations against a ${WORK_MS} ms http handler: every answer a 202, every 202 a job, every job a success`, async (t) => {
      const handler = new SlowCompletingHandler(SLOW_HANDLER_SECRET, { workMs: WORK_MS });
      await handler.start();
      const setting = await environmentFor(backend);
      let pie: PieProcess | undefined;
      const phases: string[] = [];
      let mark = performance.now();
      const phase = (name: string) => {
        const now = performance.now();
        phases.push(`${name} ${((now - mark) / 1000).toFixed(1)} s`);
        mark = now;
      };
      try {
        pie = await startPie(setting.env);
        phase('start');
        const admin = await issueToken(key, TEST_JWT, {
          subject: 'load-admin',
          scopes: ['admin'],
          ttl: '1h',
        });
        const paths = await setUpTenant(pie.url, admin, handler.url);
        phase('set-up');
        // The load runs as a tenant's job runner would: jobs:write for that client only.
        const runner = await issueToken(key, TEST_JWT, {
          subject: 'load-runner',
          scopes: ['jobs:write'],
          clients: [CLIENT],
          ttl: '1h',
        });

        const loadStarted = performance.now();
        const load = await runLoadClient({
          origin: pie.url,
          connections: CONNECTIONS,
          durationMs: LOAD_SECONDS * 1000,
          method: 'POST',
          headers: { authorization: `Bearer ${runner}`, 'content-type': 'application/json' },
          body: JSON.stringify({ job_type: 'inference', input: { horizon_min: 30 } }),
          paths,
          acceptStatus: 202,
          collectJobIds: true,
        });
        const loadEnded = performance.now();
        phase('load');
        const completedDuringLoad = handler.completed;
        const accepted = load.statuses['202'] ?? 0;
        t.diagnostic(
          `run-job: ${load.answers} answers in ${load.durationS.toFixed(1)} s ` +
            `(${load.requestsPerS.toFixed(0)} req/s; ${describeStatuses(load.statuses)}; ` +
            `${load.errors} without an answer), latency p50 ${load.latencyMs.p50.toFixed(1)} ms, ` +
            `p90 ${load.latencyMs.p90.toFixed(1)} ms, p99 ${load.latencyMs.p99.toFixed(1)} ms, ` +
            `max ${load.latencyMs.max.toFixed(1)} ms`,
        );

        await handler.waitForCompleted(accepted, DRAIN);
        const drainedAt = performance.now();
        phase('drain');
        const drainS = (drainedAt - loadEnded) / 1000;
        t.diagnostic(
          `completions: ${(completedDuringLoad / load.durationS).toFixed(0)} jobs/s during the ` +
            `load (${completedDuringLoad} of ${accepted}), ` +
            `${(accepted / ((drainedAt - loadStarted) / 1000)).toFixed(0)} jobs/s overall; the ` +
            `queue drained ${drainS.toFixed(1)} s after the load ended; ` +
            `${handler.deliveries} deliveries, ${handler.retriedJobs()} jobs delivered again; ` +
            `completion answers ${describeStatuses(handler.completionStatuses)}`,
        );

        // Every request got an answer, and every answer was a 202 (so, no 5xx).
        assert.equal(load.errors, 0, `requests without an answer: ${load.errorSamples.join('; ')}`);
        assert.deepEqual(
          load.statuses,
          { 202: load.answers },
          `unexpected answers: ${JSON.stringify(load.unexpectedSamples)}`,
        );
        assert.ok(accepted > 0);
        assert.equal(new Set(load.acceptedIds).size, accepted, 'each 202 named its own job');

        // Completions were never refused by a fault of PIE's, and deliveries were genuine.
        const completion5xx = Object.entries(handler.completionStatuses)
          .filter(([status]) => Number(status) >= 500)
          .reduce((sum, [, n]) => sum + n, 0);
        assert.equal(completion5xx, 0, 'completions answered 5xx');
        assert.equal(handler.completionErrors, 0, 'completions without an answer');
        assert.equal(handler.badSignatures, 0);

        // PIE stops cleanly, then the database is compared with the 202s one for one.
        assert.equal(await stop(pie), 0, `pie serve exit code:\n${pie.output()}`);
        phase('stop');
        // Nothing failed inside PIE either: no error (50) or fatal (60) line in its log.
        const errorLogs = pie
          .output()
          .split('\n')
          .filter((line) => /"level":(50|60)\b/.test(line));
        assert.deepEqual(errorLogs.slice(0, 5), [], `${errorLogs.length} error lines logged`);
        const { db, close } = await setting.open();
        try {
          const { rows } = await db.query<{ job_id: string; status: string }>(
            'select job_id, status from jobs where client_id = $1',
            [CLIENT],
          );
          assert.equal(rows.length, accepted, 'jobs in the database = 202 answers');
          const stored = new Map(rows.map((row) => [row.job_id, row.status]));
          const missing = load.acceptedIds.filter((id) => !stored.has(id));
          assert.deepEqual(missing.slice(0, 10), [], `${missing.length} acknowledged jobs missing`);
          const byStatus: Record<string, number> = {};
          for (const row of rows) byStatus[row.status] = (byStatus[row.status] ?? 0) + 1;
          assert.deepEqual(byStatus, { success: accepted }, 'every job reached success');
        } finally {
          await close();
          phase('check');
          t.diagnostic(phases.join(', '));
        }
      } finally {
        if (pie !== undefined) await stop(pie);
        await handler.close();
        await setting.dispose();
      }
    });
  });
}
