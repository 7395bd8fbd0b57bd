import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { issueToken } from '../../src/auth/token-issuer.js';
import { loadConfig } from '../../src/config/config.js';
import type { Database } from '../../src/db/database.js';
import { openDatabase } from '../../src/db/open-database.js';
import { isFinal, OPEN_STATUSES, type JobStatus } from '../../src/domain/job-status.js';
import { copyMigratedDataDir, testBackends, type TestBackend } from './backends.js';
import { LEDGER_SECRET } from './ledger-receiver.js';
import { pieEnv } from './pie-process.js';
import { TEST_JWT } from './test-server.js';
import { sleep } from './wait.js';

/**
 * What the fault tests share: a `pie serve` environment on either backend, a push tenant whose
 * jobs go to a ledger receiver, a steady load of job creations that records every answer, and
 * a look at the jobs table once PIE has settled.
 */

export const JWT_SECRET = crypto.randomBytes(32).toString('base64url');

export const adminToken = () =>
  issueToken(new TextEncoder().encode(JWT_SECRET), TEST_JWT, {
    subject: 'faults',
    scopes: ['admin'],
    ttl: '1h',
  });

export interface Answer {
  status: number;
  headers: Headers;
  body: any;
}

export async function api(
  url: string,
  token: string,
  method: string,
  route: string,
  body?: unknown,
): Promise<Answer> {
  const response = await fetch(url + route, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = text === '' ? undefined : JSON.parse(text);
  } catch {
    // not JSON: keep the text for the assertion message
  }
  return { status: response.status, headers: response.headers, body: parsed };
}

/** `api`, asserting that PIE answered 2xx; resolves to the body. */
export async function apiOk(
  url: string,
  token: string,
  method: string,
  route: string,
  body?: unknown,
): Promise<any> {
  const answer = await api(url, token, method, route, body);
  assert.ok(
    answer.status < 300,
    `${method} ${route}: ${answer.status} ${JSON.stringify(answer.body)}`,
  );
  return answer.body;
}

/**
 * `pie serve` settings on `backend`: a data folder for the embedded database, or a fresh
 * database on the server of DATABASE_URL (`databaseUrl` overrides, e.g. a throwaway server).
 */
export async function pieEnvironment(
  backend: TestBackend['name'] | { databaseUrl: string },
  settings: Record<string, string>,
) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pie-faults-'));
  if (backend === 'pglite') await copyMigratedDataDir(dataDir);
  const server = testBackends().find((each) => each.name === 'postgres');
  const fresh = backend === 'postgres' ? await server?.open() : undefined;
  const databaseUrl = typeof backend === 'object' ? backend.databaseUrl : fresh?.url;
  const env = pieEnv({
    PIE_DATA_DIR: dataDir,
    PIE_JWT_SECRET: JWT_SECRET,
    PIE_HTTP_ALLOW_HOSTS: '127.0.0.1',
    // The fault tests measure survival, not limits: a burst of retries must not meet a 429.
    PIE_RATE_LIMIT_RPS: '0',
    ...(databaseUrl === undefined ? {} : { DATABASE_URL: databaseUrl }),
    ...settings,
  });
  return {
    env,
    /** Opens PIE's database from the test, while no PIE process holds it. */
    open: (): Promise<Database> => openDatabase(loadConfig(env)),
    async dispose() {
      await fresh?.dispose();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface PushTenant {
  domain: string;
  /** The run-job route of the tenant's one service. */
  jobsRoute: string;
}

/** A client, domain and service whose default version pushes jobs to `receiverUrl`. */
export async function setUpPushTenant(
  url: string,
  token: string,
  receiverUrl: string,
  version: Record<string, unknown> = {},
): Promise<PushTenant> {
  const domain = '/v2/clients/faults/domains/d1';
  for (const [route, body] of [
    ['/v2/clients/faults', {}],
    [domain, {}],
    ['/v2/models/m1', {}],
    [
      '/v2/models/m1/versions/1',
      {
        features: [],
        handler: { type: 'http', url: receiverUrl, secret: LEDGER_SECRET },
        ...version,
      },
    ],
    [`${domain}/services/s1`, {}],
    [`${domain}/assignments/default`, { model_id: 'm1', model_version: '1' }],
  ] as const) {
    await apiOk(url, token, 'PUT', route, body);
  }
  return { domain, jobsRoute: `${domain}/service/s1/assignments/default/jobs` };
}

export interface LoadAnswer {
  /** When the request was sent and answered, in ms since the load started. */
  sentAt: number;
  answeredAt: number;
  /** The HTTP status, or 0 when no answer came (connection refused or cut). */
  status: number;
  body: any;
  retryAfter: string | null;
}

/**
 * `concurrency` loops creating jobs, one request at a time each, for as long as it runs.
 * Every answer is kept; `acked` are the job ids answered 202. Refused connections are kept
 * as status 0 and retried after a pause, as a client would.
 */
export class JobLoad {
  readonly answers: LoadAnswer[] = [];
  readonly acked: string[] = [];
  private running = true;
  private readonly loops: Promise<void>[];
  readonly startedAt = Date.now();

  constructor(
    private url: string,
    private readonly token: string,
    private readonly route: string,
    concurrency: number,
  ) {
    this.loops = Array.from({ length: concurrency }, () => this.loop());
  }

  /** Points the load at a restarted PIE (on a new port). */
  retarget(url: string): void {
    this.url = url;
  }

  now(): number {
    return Date.now() - this.startedAt;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const sentAt = this.now();
      let answer: LoadAnswer;
      try {
        const response = await fetch(this.url + this.route, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${this.token}`,
            'content-type': 'application/json',
          },
          body: JSON.stringify({ job_type: 'inference', input: {} }),
          signal: AbortSignal.timeout(15_000),
        });
        const text = await response.text();
        answer = {
          sentAt,
          answeredAt: this.now(),
          status: response.status,
          body: text === '' ? undefined : safeJson(text),
          retryAfter: response.headers.get('retry-after'),
        };
      } catch (error) {
        answer = {
          sentAt,
          answeredAt: this.now(),
          status: 0,
          body: String(error),
          retryAfter: null,
        };
      }
      this.answers.push(answer);
      if (answer.status === 202) {
        this.acked.push(String(answer.body.job_id));
      } else {
        // Not accepted: back off a little, as a client honouring Retry-After would (briefly).
        await sleep(100);
      }
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }

  /**
   * Fails unless every answer had one of `statuses` (`'0'`: no answer), naming the counts;
   * answers how many had each.
   */
  assertStatusesOnly(statuses: string[]): Record<string, number> {
    const counts = this.counts();
    assert.deepEqual(
      Object.keys(counts).filter((status) => !statuses.includes(status)),
      [],
      `answers by status: ${JSON.stringify(counts)}`,
    );
    return counts;
  }

  /** How many answers had each status. */
  counts(answers: LoadAnswer[] = this.answers): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const answer of answers) counts[answer.status] = (counts[answer.status] ?? 0) + 1;
    return counts;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Every job of the domain, by id, read through the API. */
export async function jobsById(url: string, token: string, domain: string) {
  const jobs = new Map<string, { status: string; attempt: number }>();
  let cursor: string | null = null;
  do {
    const query: string = `?limit=500${cursor === null ? '' : `&cursor=${cursor}`}`;
    const page = await api(url, token, 'GET', `${domain}/jobs${query}`);
    assert.equal(page.status, 200, JSON.stringify(page.body));
    for (const job of page.body.items as { job_id: string; status: string; attempt: number }[]) {
      jobs.set(job.job_id, job);
    }
    cursor = page.body.next_cursor as string | null;
  } while (cursor !== null);
  return jobs;
}

/** How many jobs of the domain are in one of `statuses`, read through the API. */
export async function countJobs(url: string, token: string, domain: string, statuses: string[]) {
  let count = 0;
  for (const status of statuses) {
    let cursor: string | null = null;
    do {
      const query: string = `?status=${status}&limit=500${cursor === null ? '' : `&cursor=${cursor}`}`;
      const page = await api(url, token, 'GET', `${domain}/jobs${query}`);
      assert.equal(page.status, 200, JSON.stringify(page.body));
      count += (page.body.items as unknown[]).length;
      cursor = page.body.next_cursor as string | null;
    } while (cursor !== null);
  }
  return count;
}

/**
 * Waits until no job of the domain is queued, dispatched or running, then answers every job
 * by id. Only the open jobs are read while waiting, so that a large backlog is not slowed by
 * the test listing the finished ones again and again.
 *
 * The three counts are three reads, so a job that moved between them can be in none: a lease
 * the reaper expired (dispatched, then queued) and a dispatcher claimed again (dispatched) in
 * the milliseconds between the reads (a crash-restart run in CI settled with 27 jobs not yet
 * succeeded). So zero open jobs is only the cue for the full read, which settles the wait
 * only if every job in it is final: final statuses never change, and each job is on exactly
 * one page.
 *
 * `mayStayOpen` names jobs the caller expects to stay open (after an asynchronous failover, a
 * job whose completion was answered 200 by the old primary but never reached the standby waits
 * for its deadline). With it, every read is a full one, and the wait settles once every job is
 * final or so named.
 */
export async function waitUntilSettled(
  url: string,
  token: string,
  domain: string,
  timeoutMs: number,
  mayStayOpen?: (jobId: string) => boolean,
) {
  const end = Date.now() + timeoutMs;
  const settled = ([id, job]: [string, { status: string }]) =>
    isFinal(job.status as JobStatus) || mayStayOpen?.(id) === true;
  for (;;) {
    const open = await countJobs(url, token, domain, [...OPEN_STATUSES]);
    if (open === 0 || mayStayOpen !== undefined) {
      const jobs = await jobsById(url, token, domain);
      if ([...jobs].every(settled)) return jobs;
    }
    if (Date.now() > end) {
      const all = await jobsById(url, token, domain);
      // Which jobs, in which status and attempt: a flake after a failover needs them to explain.
      const stuck = [...all]
        .filter((entry) => !settled(entry))
        .map(([id, job]) => `${id} ${job.status} (attempt ${job.attempt})`);
      throw new Error(
        `${open} of ${all.size} jobs still open after ${timeoutMs} ms: ${stuck.join(', ')}`,
      );
    }
    await sleep(250);
  }
}
