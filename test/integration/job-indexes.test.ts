import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Queryable } from '../../src/db/database.js';
import { failAttempt, handOver, renewLease, retryOrFail } from '../../src/lifecycle/attempt.js';
import { timeOutOverdueJobs } from '../../src/lifecycle/expiry.js';
import { cancel, complete } from '../../src/lifecycle/finish.js';
import { lockJobForCompletion } from '../../src/repositories/job-completion.repository.js';
import { listJobs, type JobFilter } from '../../src/repositories/jobs.repository.js';
import { countOpenJobsByClient } from '../../src/repositories/open-jobs.repository.js';
import {
  deleteOldFinishedJobs,
  deleteOldIdempotencyRecords,
} from '../../src/repositories/retention.repository.js';
import { testBackends, type TestDatabase } from '../helpers/backends.js';
import {
  insertJobs,
  ROW_DOMAIN,
  ROW_MODEL,
  seedJobTarget,
  type JobRow,
} from '../helpers/job-rows.js';

/**
 * Every filter of the jobs list, and retention's deletes, read an index rather than the whole
 * table. Plans are read from the statements the repositories send (captured, then explained),
 * over a few thousand jobs the planner has statistics for (`analyze`), so a sequential scan
 * would be its honest choice if no index served.
 *
 * The list is checked in its generic plan, the one a prepared statement settles on and reuses
 * for any value: a filter that is an index condition there is one for every value. (Custom
 * plans, made for the values at hand, may pick other indexes, such as the open statuses'
 * partial index for `status=queued`; they are checked to read an index too.)
 */

interface Captured {
  text: string;
  values: readonly unknown[];
}

/** Runs `send` against a Queryable that records the statement and answers no rows. */
async function captureStatement(send: (q: Queryable) => Promise<unknown>): Promise<Captured> {
  let captured: Captured | undefined;
  await send({
    query: (text, values = []) => {
      captured = { text, values };
      return Promise.resolve({ rows: [], rowCount: 0 });
    },
    exec: () => Promise.reject(new Error('not used')),
  });
  if (captured === undefined) throw new Error('no statement sent');
  return captured;
}

function literal(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'string') return `'${value.replaceAll("'", "''")}'`;
  throw new Error(`no literal for ${JSON.stringify(value)}`);
}

function planText(rows: Record<string, unknown>[]): string {
  return rows.map((row) => String(row['QUERY PLAN'])).join('\n');
}

/** `explain <options>` of the plan a prepared statement reuses for any value (its generic plan). */
function explainGeneric(
  database: TestDatabase,
  { text, values }: Captured,
  options = '',
): Promise<Record<string, unknown>[]> {
  return database.db.transaction(async (tx) => {
    await tx.exec('set local plan_cache_mode = force_generic_plan');
    await tx.exec(`prepare plan_under_test as ${text}`);
    try {
      const { rows } = await tx.query(
        `explain ${options} execute plan_under_test(${values.map(literal).join(', ')})`,
      );
      return rows;
    } finally {
      await tx.exec('deallocate plan_under_test');
    }
  });
}

/** The plan a prepared statement reuses for any value (its generic plan). */
async function genericPlan(database: TestDatabase, statement: Captured): Promise<string> {
  return planText(await explainGeneric(database, statement));
}

/** The plan made for these values. */
async function customPlan(database: TestDatabase, { text, values }: Captured): Promise<string> {
  const { rows } = await database.db.query(`explain ${text}`, values);
  return planText(rows);
}

/** Whether some `Index Cond` of the plan tests `column` (as `column =` or in a row compare). */
function indexConditionOn(plan: string, column: string): boolean {
  return plan
    .split('\n')
    .filter((line) => line.includes('Index Cond:'))
    .some((line) => new RegExp(`\\b${column}\\b`).test(line));
}

const PAGE = { limit: 50, after: undefined };
// Halfway through the jobs (created over the last 3,000 s).
const CURSOR = {
  limit: 50,
  after: [new Date(Date.now() - 1500_000).toISOString(), '500000000000'],
};

const BATCH = '00000000-0000-4000-8000-0000000000b1';

/** Each documented filter, the column it tests, and one value of it. */
const FILTERS: { name: string; filter: JobFilter; column: string }[] = [
  { name: 'no filter', filter: {}, column: 'domain_id' },
  { name: 'status (open)', filter: { status: 'queued' }, column: 'status' },
  { name: 'status (final)', filter: { status: 'failure' }, column: 'status' },
  { name: 'service_id', filter: { serviceId: 's7' }, column: 'service_id' },
  { name: 'job_type', filter: { jobType: 'training' }, column: 'job_type' },
  { name: 'assignment_key', filter: { assignmentKey: 'rare' }, column: 'assignment_key' },
  { name: 'batch_id', filter: { batchId: BATCH }, column: 'batch_id' },
  { name: 'parent_job_id', filter: { parentJobId: '100000000007' }, column: 'retry_of' },
];

/** 6,000 jobs over two clients, 50 services, mostly old successes, and aged idempotency records. */
function manyJobs(): JobRow[] {
  return Array.from({ length: 3000 }, (_, i) => ({
    tag: `j${i}`,
    status: i % 50 === 0 ? 'queued' : i % 10 === 0 ? 'failure' : 'success',
    createdAgoS: 3000 - i,
    finishedAgoS: i % 50 === 0 ? null : 3000 - i,
    serviceId: `s${i % 50}`,
    jobType: i % 20 === 0 ? 'training' : 'inference',
    assignmentKey: i % 25 === 0 ? 'rare' : 'default',
  }));
}

for (const backend of testBackends()) {
  describe(`job indexes [${backend.name}]`, () => {
    let database: TestDatabase;

    before(async () => {
      database = await backend.open();
      const { db } = database;
      for (const clientId of ['c1', 'c2']) {
        await seedJobTarget(db, clientId, 50);
        await insertJobs(db, clientId, manyJobs());
      }
      // One batch of 100 of c1's jobs.
      await db.query(
        `update jobs set batch_id = $1
         where job_id in (select job_id from jobs where client_id = 'c1' order by job_id limit 100)`,
        [BATCH],
      );
      await db.query(
        `insert into idempotency_keys (client_id, caller, key, request_hash, created_at)
         select 'c1', 'test', 'k' || i, 'hash', now() - make_interval(hours => i)
         from generate_series(1, 3000) as i`,
      );
      // Forty of c1's jobs retried from, or triggered by, another.
      await db.query(
        `update jobs set
           retry_of = case when job_id::bigint % 2 = 0 then '100000000007' end,
           trigger = case when job_id::bigint % 2 = 1
             then jsonb_build_object('subscription_id', gen_random_uuid(), 'job_id', '100000000008')
           end
         where job_id in (select job_id from jobs where client_id = 'c1' order by job_id limit 40)`,
      );
      await db.exec('analyze');
    });
    after(async () => {
      await database?.dispose();
    });

    for (const { name, filter, column } of FILTERS) {
      for (const [paging, page] of [
        ['first page', PAGE],
        ['after a cursor', CURSOR],
      ] as const) {
        it(`lists jobs by ${name}, ${paging}, from an index`, async () => {
          const statement = await captureStatement((q) =>
            listJobs(q, 'c1', ROW_DOMAIN, filter, page),
          );
          const generic = await genericPlan(database, statement);
          assert.doesNotMatch(generic, /Seq Scan/, generic);
          assert.ok(
            indexConditionOn(generic, column),
            `${column} is no index condition:\n${generic}`,
          );
          if (page.after !== undefined) {
            assert.ok(
              indexConditionOn(generic, 'created_at'),
              `the cursor is no index condition:\n${generic}`,
            );
          }
          const custom = await customPlan(database, statement);
          assert.doesNotMatch(custom, /Seq Scan/, custom);
          assert.match(custom, /Index (Only )?Scan/, custom);
        });
      }
    }

    it('finds old finished jobs to delete through jobs_finished', async () => {
      const statement = await captureStatement((q) => deleteOldFinishedJobs(q, 60, 500));
      for (const plan of [
        await customPlan(database, statement),
        await genericPlan(database, statement),
      ]) {
        // (The debounce joins of the deleted jobs go too; that table is empty here.)
        assert.doesNotMatch(plan, /Seq Scan on jobs\b/, plan);
        assert.match(plan, /Index Scan using jobs_finished on jobs/, plan);
        assert.match(plan, /Tid Scan on jobs/, plan);
      }
    });

    it('finds old idempotency records to delete through idempotency_keys_by_age', async () => {
      const statement = await captureStatement((q) => deleteOldIdempotencyRecords(q, 86_400, 500));
      for (const plan of [
        await customPlan(database, statement),
        await genericPlan(database, statement),
      ]) {
        assert.doesNotMatch(plan, /Seq Scan/, plan);
        assert.match(plan, /Index Scan using idempotency_keys_by_age/, plan);
      }
    });
  });
}

/** The most rows one scan of the plan read (EXPLAIN ANALYZE), over all its loops. */
function largestScan(plan: unknown): number {
  const node = plan as { 'Node Type'?: string; 'Actual Rows'?: number; 'Actual Loops'?: number };
  const own = node['Node Type']?.includes('Scan')
    ? (node['Actual Rows'] ?? 0) * (node['Actual Loops'] ?? 1)
    : 0;
  const children = ((plan as { Plans?: unknown[] }).Plans ?? []).map(largestScan);
  return Math.max(own, ...children);
}

/** The largest scan of the statement run for its values, and of its generic plan. */
async function rowsRead(database: TestDatabase, statement: Captured): Promise<number[]> {
  const analyzed = (rows: Record<string, unknown>[]) => {
    const cell = rows[0]!['QUERY PLAN'];
    const doc = (typeof cell === 'string' ? JSON.parse(cell) : cell) as { Plan: unknown }[];
    return largestScan(doc[0]!.Plan);
  };
  const { text, values } = statement;
  const custom = await database.db.query(`explain (analyze, format json) ${text}`, values);
  const generic = await explainGeneric(database, statement, '(analyze, format json)');
  return [analyzed(custom.rows), analyzed(generic)];
}

/**
 * The jobs of a services init or a bulk batch share their creation time (one statement), and a
 * page of a filtered list still reads about a page of rows. The list orders by creation time,
 * then job id, both descending; an index without the job id (as `jobs_by_service` was) made
 * every page read the whole tie and sort it. The unfiltered list still does (`jobs_by_domain`
 * keeps the job id ascending: migration 000020 says why), so it is not among these.
 */
for (const backend of testBackends()) {
  describe(`jobs list over jobs created together [${backend.name}]`, () => {
    let database: TestDatabase;
    let cursor: [string, string];

    before(async () => {
      database = await backend.open();
      const { db } = database;
      await seedJobTarget(db, 'c1', 2);
      // One statement: one creation time for all.
      await insertJobs(
        db,
        'c1',
        Array.from({ length: 3000 }, (_, i) => ({
          tag: `t${i}`,
          status: 'queued',
          serviceId: `s${i % 2}`,
        })),
      );
      await db.query(`update jobs set batch_id = $1`, [BATCH]);
      await db.exec('analyze');
      const { rows } = await db.query<{ created_at: Date; job_id: string }>(
        `select created_at, job_id from jobs order by job_id limit 1 offset 1500`,
      );
      cursor = [rows[0]!.created_at.toISOString(), rows[0]!.job_id];
    });
    after(async () => {
      await database?.dispose();
    });

    const filters: { name: string; filter: JobFilter }[] = [
      { name: 'status', filter: { status: 'queued' } },
      { name: 'service_id', filter: { serviceId: 's1' } },
      { name: 'job_type', filter: { jobType: 'inference' } },
      { name: 'assignment_key', filter: { assignmentKey: 'default' } },
      { name: 'batch_id', filter: { batchId: BATCH } },
    ];
    for (const { name, filter } of filters) {
      for (const paging of ['first page', 'within the tie'] as const) {
        it(`lists jobs by ${name}, ${paging}, reading one page`, async () => {
          const page = { limit: 50, after: paging === 'first page' ? undefined : cursor };
          const statement = await captureStatement((q) =>
            listJobs(q, 'c1', ROW_DOMAIN, filter, page),
          );
          const [custom, generic] = await rowsRead(database, statement);
          assert.ok(custom! <= page.limit + 1, `the plan for the values read ${custom} rows`);
          assert.ok(generic! <= page.limit + 1, `the generic plan read ${generic} rows`);
        });
      }
    }
  });
}

/**
 * Every transition that names one job finds it through an index on the job's id, whatever
 * else the statement says. The jobs in flight here arrived after the last `analyze`, as they do
 * between two analyzes in service: statistics that saw none in flight make a partial index of
 * in-flight jobs look empty, and a plan that scanned such an index by client alone read every
 * in-flight job of the client on each completion (with a million jobs kept, the completion
 * route's p50 doubled).
 */
for (const backend of testBackends()) {
  describe(`job transitions by id [${backend.name}]`, () => {
    let database: TestDatabase;
    let jobId: string;

    before(async () => {
      database = await backend.open();
      const { db } = database;
      await seedJobTarget(db, 'c1', 50);
      // A quiet moment: every job finished when statistics were taken.
      const finished = manyJobs().map((job) =>
        job.status === 'queued'
          ? { ...job, status: 'success' as const, finishedAgoS: job.createdAgoS }
          : job,
      );
      await insertJobs(db, 'c1', finished);
      await db.exec('analyze');
      await insertJobs(
        db,
        'c1',
        Array.from({ length: 500 }, (_, i) => ({ tag: `flight${i}`, status: 'dispatched' })),
      );
      const { rows } = await db.query<{ job_id: string }>(
        `select job_id from jobs where input->>'tag' = 'flight250'`,
      );
      jobId = rows[0]!.job_id;
    });
    after(async () => {
      await database?.dispose();
    });

    const emit = () => undefined;
    const attempt = () => ({
      job_id: jobId,
      client_id: 'c1',
      attempt: 1,
      job_type: 'inference',
      model_id: ROW_MODEL,
      model_version: '1',
    });
    const error = { code: 'model_error', message: 'no' };
    const transitions: [string, (q: Queryable) => Promise<unknown>][] = [
      ['lock for completion', (q) => lockJobForCompletion(q, jobId)],
      [
        'complete',
        (q) =>
          complete(
            q,
            emit,
            { client_id: 'c1', job_id: jobId, job_type: 'inference' },
            {
              request: { status: 'success', output: { eta: 4 }, error: null },
              response: { status_code: 200, body: {} },
            },
          ),
      ],
      ['cancel', (q) => cancel(q, emit, 'c1', ROW_DOMAIN, jobId)],
      ['hand over', (q) => handOver(q, attempt(), 'ref')],
      ['renew a lease', (q) => renewLease(q, jobId, 1, 60, true)],
      ['retry or fail', (q) => retryOrFail(q, emit, attempt(), error, undefined)],
      ['fail an attempt', (q) => failAttempt(q, emit, attempt(), error)],
    ];
    it('still counts open jobs and finds overdue ones through jobs_open_deadlines', async () => {
      for (const send of [
        (q: Queryable) => countOpenJobsByClient(q),
        (q: Queryable) => timeOutOverdueJobs(q, emit, 100),
      ]) {
        const statement = await captureStatement(send);
        const plan = await customPlan(database, statement);
        assert.match(plan, /Index (Only )?Scan using jobs_open_deadlines/, plan);
      }
    });

    for (const [name, send] of transitions) {
      it(`${name}: finds the job by its id`, async () => {
        const statement = await captureStatement(send);
        for (const plan of [
          await customPlan(database, statement),
          await genericPlan(database, statement),
        ]) {
          assert.ok(indexConditionOn(plan, 'job_id'), `job_id is no index condition:\n${plan}`);
        }
      });
    }
  });
}
