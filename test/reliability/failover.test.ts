import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  adminToken,
  JobLoad,
  pieEnvironment,
  setUpPushTenant,
  waitUntilSettled,
} from '../helpers/fault-harness.js';
import { LedgerReceiver } from '../helpers/ledger-receiver.js';
import { startPie, type PieProcess } from '../helpers/pie-process.js';
import { ThrowawayPostgresPair, type PairMember } from '../helpers/throwaway-postgres-pair.js';
import { sleep, waitFor } from '../helpers/wait.js';

/**
 * PostgreSQL failing over under load: `pie serve` on a primary and a streaming standby of the
 * test's own (initdb, pg_basebackup, pg_ctl on free ports), given both in one DATABASE_URL with
 * `target_session_attrs=read-write`. Mid-load the primary is killed (SIGKILL, every process of
 * it, as a crash would) and, a moment later, the standby promoted, as a failover manager would.
 * PIE must find the new primary by itself, answer 503 (never 500) meanwhile, and then the
 * ledger is checked against the new primary. In a third case the primary is not killed but
 * turned read-only, so PIE's connections to it stay up: it must still move, LISTEN included.
 *
 * With a synchronous standby nothing acknowledged may be lost: every job answered 202 exists
 * and finishes, every completion answered 200 is kept, and no attempt is delivered twice. With
 * an asynchronous one, what was lost is counted and reported, not asserted: that difference is
 * why the documented setting is the synchronous one.
 */

/** How long after the crash the standby is promoted (a failover manager's detection time). */
const PROMOTE_AFTER_MS = 1000;

interface JobRow {
  job_id: string;
  status: string;
  attempt: number;
  output: { attempt?: number } | null;
}

interface Ledger {
  acknowledged: number;
  finished: number;
  lost: string[];
  unfinished: string[];
  completionsKept: number;
  completionsLost: string[];
  duplicatedAttempts: string[];
  windowMs: number;
  afterPromotionMs: number;
  counts: Record<string, number>;
}

/**
 * How the primary goes: killed (a crash), or turned read-only while it keeps running (as an
 * operator or a tool does before a switchover): its sessions stay up, and writes fail with
 * SQLSTATE 25006 instead of a broken connection.
 */
type PrimaryLoss = 'crash' | 'read-only';

/** Sessions on one server of the pair whose last statement was a LISTEN (PIE's wake-ups). */
async function listenSessions(pair: ThrowawayPostgresPair, which: PairMember): Promise<number> {
  const [row] = await pair.query(
    which,
    `select count(*) as n from pg_stat_activity where query ilike 'listen %'`,
  );
  return Number(row?.['n']);
}

async function failOverUnderLoad(synchronous: boolean, loss: PrimaryLoss): Promise<Ledger> {
  const pair = await ThrowawayPostgresPair.create({ synchronous });
  const receiver = new LedgerReceiver();
  await receiver.start();
  const setting = await pieEnvironment({ databaseUrl: pair.failoverUrl }, { PIE_LEASE_S: '10' });
  let pie: PieProcess | undefined;
  let running: JobLoad | undefined;
  try {
    pie = await startPie(setting.env);
    const token = await adminToken();
    const tenant = await setUpPushTenant(pie.url, token, receiver.url);
    const load = new JobLoad(pie.url, token, tenant.jobsRoute, 6);
    running = load;
    await waitFor('jobs before the crash', () => receiver.completions.length >= 150, 30_000);

    if (loss === 'crash') {
      await pair.killPrimary();
    } else {
      await pair.query('primary', 'alter system set default_transaction_read_only = on');
      await pair.query('primary', 'select pg_reload_conf()');
    }
    const crashedAt = load.now();
    await sleep(PROMOTE_AFTER_MS);
    await pair.promoteStandby();
    const promotedAt = load.now();
    await waitFor(
      'a 202 from the new primary',
      () => load.answers.some((answer) => answer.sentAt >= promotedAt && answer.status === 202),
      30_000,
    );
    await sleep(1000);
    await load.stop();

    // Over the whole run: 202 or 503 (with its Retry-After), never a 500 or a dropped request.
    const counts = load.assertStatusesOnly(['202', '503']);
    for (const answer of load.answers.filter((each) => each.status === 503)) {
      assert.ok(Number(answer.retryAfter) >= 1, `Retry-After: ${answer.retryAfter}`);
    }
    assert.equal(pie.child.exitCode, null, 'PIE kept running');
    const firstAfter = load.answers
      .filter((answer) => answer.sentAt >= crashedAt && answer.status === 202)
      .reduce((first, answer) => Math.min(first, answer.answeredAt), Infinity);

    // LISTEN moved too: PIE's wake-up connections are on the new primary.
    await waitFor(
      'PIE listening on the new primary',
      async () => (await listenSessions(pair, 'standby')) > 0,
      15_000,
    );
    if (loss === 'read-only') {
      // ...and left the old one, which is up and would tell them nothing from now on.
      await waitFor(
        'PIE no longer listening on the old primary',
        async () => (await listenSessions(pair, 'primary')) === 0,
        15_000,
      );
    }

    // With an asynchronous standby, a completion the old primary answered 200 may be missing
    // on the new one: its job was handed over (no lease left to expire) and waits for its
    // deadline. Such a job is counted below as a completion lost, not waited for.
    const completed = (id: string) =>
      receiver.completions.some((each) => each.job_id === id && each.status === 200);
    await waitUntilSettled(
      pie.url,
      token,
      tenant.domain,
      60_000,
      synchronous ? undefined : completed,
    );
    const rows = (await pair.query(
      'standby',
      'select job_id, status, attempt, output from jobs',
    )) as unknown as JobRow[];
    const jobs = new Map(rows.map((row) => [row.job_id, row]));
    const accepted = receiver.completions.filter((completion) => completion.status === 200);
    const deliveries = new Map<string, number>();
    for (const receipt of receiver.receipts) {
      const key = `${receipt.job_id}#${receipt.attempt}`;
      deliveries.set(key, (deliveries.get(key) ?? 0) + 1);
    }
    return {
      acknowledged: load.acked.length,
      finished: load.acked.filter((id) => jobs.get(id)?.status === 'success').length,
      lost: load.acked.filter((id) => !jobs.has(id)),
      unfinished: load.acked.filter((id) => jobs.has(id) && jobs.get(id)?.status !== 'success'),
      completionsKept: accepted.filter(
        (each) =>
          jobs.get(each.job_id)?.status === 'success' &&
          jobs.get(each.job_id)?.output?.attempt === each.attempt,
      ).length,
      completionsLost: accepted
        .filter((each) => jobs.get(each.job_id)?.output?.attempt !== each.attempt)
        .map((each) => `${each.job_id}#${each.attempt}`),
      duplicatedAttempts: [...deliveries].filter(([, n]) => n > 1).map(([key]) => key),
      windowMs: firstAfter - crashedAt,
      afterPromotionMs: firstAfter - promotedAt,
      counts,
    };
  } catch (error) {
    console.log(
      `PIE output (end):\n${pie?.output().slice(-4000) ?? ''}\n` +
        `primary log (end):\n${pair.log('primary').slice(-2000)}\n` +
        `standby log (end):\n${pair.log('standby').slice(-2000)}`,
    );
    throw error;
  } finally {
    await running?.stop();
    pie?.child.kill('SIGTERM');
    await pie?.exited;
    await receiver.close();
    await setting.dispose();
    await pair.remove();
  }
}

function assertNothingLost(ledger: Ledger): void {
  assert.ok(ledger.acknowledged >= 150, `acknowledged ${ledger.acknowledged}`);
  assert.deepEqual(ledger.lost, [], 'every job answered 202 exists on the new primary');
  assert.deepEqual(ledger.unfinished, [], 'every job answered 202 finished');
  assert.equal(ledger.finished, ledger.acknowledged);
  assert.deepEqual(ledger.completionsLost, [], 'every completion answered 200 is kept');
  assert.deepEqual(ledger.duplicatedAttempts, [], 'no attempt handed out twice');
  assert.ok(ledger.counts['503'] !== undefined, 'requests during the switch saw 503');
}

function report(name: string, ledger: Ledger): void {
  console.log(
    `${name}: acknowledged ${ledger.acknowledged}, finished ${ledger.finished}, ` +
      `lost ${ledger.lost.length}, unfinished ${ledger.unfinished.length}; ` +
      `completions answered 200 kept ${ledger.completionsKept}, lost ${ledger.completionsLost.length}; ` +
      `attempts delivered twice ${ledger.duplicatedAttempts.length}; ` +
      `unavailable ${ledger.windowMs} ms from the crash to the first 202 ` +
      `(${PROMOTE_AFTER_MS} ms until the promotion was asked, ${ledger.afterPromotionMs} ms after it ended); ` +
      `answers ${JSON.stringify(ledger.counts)}`,
  );
}

describe('PostgreSQL failover [throwaway primary and standby]', () => {
  it('with a synchronous standby: finds the new primary, loses nothing acknowledged, delivers no attempt twice', async () => {
    const ledger = await failOverUnderLoad(true, 'crash');
    report('synchronous standby', ledger);
    assertNothingLost(ledger);
  });

  it('with a primary turned read-only (a switchover): moves its connections and LISTEN to the promoted standby', async () => {
    const ledger = await failOverUnderLoad(true, 'read-only');
    report('primary turned read-only, synchronous standby', ledger);
    assertNothingLost(ledger);
  });

  it('with an asynchronous standby: finds the new primary and reports what was lost', async () => {
    const ledger = await failOverUnderLoad(false, 'crash');
    report('asynchronous standby', ledger);
    assert.ok(ledger.acknowledged >= 150, `acknowledged ${ledger.acknowledged}`);
    // What was lost is reported above, not asserted: an asynchronous standby may miss the last
    // commits the old primary acknowledged. What must hold is that PIE carried on.
    assert.ok(ledger.finished > 0, 'jobs finished on the new primary');
  });
});
