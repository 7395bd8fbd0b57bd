import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { Database } from '../../src/db/database.js';
import {
  JOB_STATUSES,
  JOB_TRANSITIONS,
  canTransition,
  type JobStatus,
  type TransitionName,
} from '../../src/domain/job-status.js';
import {
  failAttempt,
  releaseHeldJobs,
  renewLease,
  retryOrFail,
  type AttemptRef,
} from '../../src/lifecycle/attempt.js';
import { claimWorkerJobs } from '../../src/lifecycle/claim.js';
import { expireLeases, timeOutOverdueJobs } from '../../src/lifecycle/expiry.js';
import { cancel, complete } from '../../src/lifecycle/finish.js';
import type { JobEvent } from '../../src/lifecycle/job-events.js';
import { createTenant, type Tenant } from '../helpers/fixtures.js';
import { scrapeMetrics } from '../helpers/scrape-metrics.js';
import { describeOnEachBackend, type TestServer } from '../helpers/test-server.js';

/** A job put in `status` for a test, attempt 1 of 3, with an expired lease held by `holder`. */
interface Subject extends AttemptRef {
  clientId: string;
  domainId: string;
  holder: string;
}

const ERROR = { code: 'test', message: 'a test failure' };

/**
 * Each transition applied to a job in each status: from a status in its `from` list the job
 * must end in one of its `to` statuses; from any other status nothing may change. The
 * functions are called as their use cases call them.
 */
const APPLY: Record<
  TransitionName,
  (db: Database, emit: (event: JobEvent) => void, job: Subject, tenant: Tenant) => Promise<unknown>
> = {
  claim: (db, _emit, job, t) => claimWorkerJobs(db, t.modelId, t.version, '*', 'w', 30, 50),
  start: (db, _emit, job) => renewLease(db, job.job_id, job.attempt, 30, true),
  complete: (db, emit, job) =>
    complete(
      db,
      emit,
      { client_id: job.clientId, job_id: job.job_id, job_type: 'inference' },
      {
        request: { status: 'success', output: {}, error: null },
        response: { status_code: 200, body: {} },
      },
    ),
  retry: (db, emit, job) => retryOrFail(db, emit, job, ERROR, 0),
  fail: (db, emit, job) => failAttempt(db, emit, job, ERROR),
  expireLease: (db, emit) => expireLeases(db, emit, 500),
  timeOut: (db, emit) => timeOutOverdueJobs(db, emit, 500),
  release: (db, emit, job) => releaseHeldJobs(db, emit, job.holder),
  cancel: (db, emit, job) => cancel(db, emit, job.clientId, job.domainId, job.job_id),
};

describeOnEachBackend('job lifecycle', (server) => {
  let tenant: Tenant;
  let counter = 0;

  before(async () => {
    tenant = await createTenant(server());
  });

  /** A new job of the tenant, forced into `status` (only tests write a status directly). */
  async function jobIn(s: TestServer, status: JobStatus, transition: TransitionName) {
    const started = await s.post(`${tenant.domainPath}/assignments/default/jobs`, {
      job_type: 'inference',
    });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    const jobId = started.body.job_id as string;
    counter += 1;
    const holder = `holder-${counter}`;
    // Only the transition under test may find the job: others' timers stay in the future.
    await s.db.query(
      `update jobs set status = $2, attempt = 1, max_attempts = 3, locked_by = $3,
         dispatched_at = case when $2 <> 'queued' then now() end,
         finished_at = case when $2 in ('success', 'failure', 'cancelled') then now() end,
         run_at = case when $4 then '2000-01-01' else now() + interval '1 hour' end,
         lease_expires_at = case when $5 then now() - interval '1 second'
                                 when $6 then now() + interval '1 hour' end,
         deadline_at = case when $7 then now() - interval '1 second'
                            else now() + interval '1 hour' end
       where job_id = $1`,
      [
        jobId,
        status,
        holder,
        transition === 'claim',
        transition === 'expireLease',
        transition === 'release',
        transition === 'timeOut',
      ],
    );
    return {
      job_id: jobId,
      attempt: 1,
      job_type: 'inference',
      model_id: tenant.modelId,
      model_version: tenant.version,
      clientId: tenant.clientId,
      domainId: tenant.domainId,
      holder,
    } satisfies Subject;
  }

  async function statusOf(s: TestServer, jobId: string): Promise<JobStatus> {
    const { rows } = await s.db.query<{ status: JobStatus }>(
      'select status from jobs where job_id = $1',
      [jobId],
    );
    return rows[0]!.status;
  }

  for (const [name, transition] of Object.entries(JOB_TRANSITIONS) as [
    TransitionName,
    (typeof JOB_TRANSITIONS)[TransitionName],
  ][]) {
    describe(name, () => {
      for (const status of JOB_STATUSES) {
        const allowed = (transition.from as readonly JobStatus[]).includes(status);
        it(`from ${status}: ${allowed ? `ends in ${transition.to.join(' or ')}` : 'changes nothing'}`, async () => {
          const s = server();
          const job = await jobIn(s, status, name);
          const events: JobEvent[] = [];
          await APPLY[name](s.db, (event) => events.push(event), job, tenant);
          const after = await statusOf(s, job.job_id);
          if (allowed) {
            assert.ok(
              (transition.to as readonly JobStatus[]).includes(after),
              `${name} from ${status} ended in ${after}`,
            );
            if (after !== status) assert.ok(canTransition(status, after));
          } else {
            assert.equal(after, status);
            assert.deepEqual(events, []);
          }
        });
      }
    });
  }

  it('a final status has no way out, and every open status has one', () => {
    for (const from of JOB_STATUSES) {
      const exits = JOB_STATUSES.filter((to) => canTransition(from, to));
      if (from === 'success' || from === 'failure' || from === 'cancelled') {
        assert.deepEqual(exits, [], from);
      } else assert.ok(exits.length > 0, from);
    }
  });

  it('counts a cancelled job in pie_jobs_finished_total', async () => {
    const s = server();
    const series = 'pie_jobs_finished_total{job_type="training",status="cancelled"}';
    const before = (await scrapeMetrics(s.url)).get(series) ?? 0;
    const started = await s.post(`${tenant.domainPath}/assignments/default/jobs`, {
      job_type: 'training',
    });
    assert.equal(started.status, 202);
    const cancelled = await s.post(`${tenant.domainPath}/jobs/${started.body.job_id}/cancel`);
    assert.equal(cancelled.status, 200);
    assert.equal(cancelled.body.status, 'cancelled');
    assert.equal((await scrapeMetrics(s.url)).get(series), before + 1);
    // Cancelling again answers the job unchanged and counts nothing more.
    assert.equal(
      (await s.post(`${tenant.domainPath}/jobs/${started.body.job_id}/cancel`)).status,
      200,
    );
    assert.equal((await scrapeMetrics(s.url)).get(series), before + 1);
  });
});
