import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Queryable } from '../../src/db/database.js';
import { sequenceJobEvents } from '../../src/repositories/job-events.repository.js';
import { testBackends, type TestDatabase } from '../helpers/backends.js';

/**
 * A sequencer turn (`pie_sequence_job_events`) costs what it numbers, not what the log keeps.
 * The log keeps every event for PIE_EVENTS_RETENTION_S (an hour by default): at the bench's
 * rates, hundreds of thousands of rows. A turn that read them all, every few milliseconds,
 * took a core of its own; a turn whose plan rescanned its backlog once per row took a minute
 * (BENCHMARKS.md, optimisation 23). Migration 000021 says how a turn avoids both.
 */

/** Events kept, all numbered already, as an hour of a busy server leaves them. */
const KEPT = 100_000;
/** Events committed since the last turn. */
const NEW = 10;
/** Events waiting after a burst: three turns' worth. */
const BACKLOG = 3000;
/** The most events one turn numbers (as `pie serve`'s sequencer asks). */
const TURN = 1000;

/** Writes `count` events of one domain; numbered from `from` on, or left for the sequencer. */
async function writeEvents(q: Queryable, count: number, from: number | null): Promise<void> {
  await q.query(
    `insert into job_events (position, client_id, domain_id, job_id, status, previous_status,
       job_type, service_id, model_id, model_version, attempt, updated_at)
     select $2::bigint + i - 1, 'c1', 'd1', (100000000000 + i)::text, 'success', 'dispatched',
       'inference', 's1', 'm', '1', 1, now()
     from generate_series(1, $1::integer) as i`,
    [count, from],
  );
}

/** The buffers (pages of tables and indexes) one statement touched, read or found in memory. */
async function buffersTouched(q: Queryable, statement: string): Promise<number> {
  const { rows } = await q.query<{ 'QUERY PLAN': [{ Plan: Record<string, number> }] }>(
    `explain (analyze, buffers, format json) ${statement}`,
  );
  const plan = rows[0]!['QUERY PLAN'][0].Plan;
  return (plan['Shared Hit Blocks'] ?? 0) + (plan['Shared Read Blocks'] ?? 0);
}

for (const backend of testBackends()) {
  describe(`job event sequencer over a long log [${backend.name}]`, () => {
    let database: TestDatabase;

    before(async () => {
      database = await backend.open();
      const { db } = database;
      await writeEvents(db, KEPT, 1);
      await db.query('update job_event_log set head = $1, counted_through = $1', [KEPT]);
      await db.exec('analyze job_events');
    });
    after(async () => {
      await database?.dispose();
    });

    it('numbers new events reading a few pages, not the log it keeps', async () => {
      const { db } = database;
      const { rows } = await db.query<{ pages: number }>(
        `select pg_relation_size('job_events')::float8 / current_setting('block_size')::int as pages`,
      );
      const tablePages = rows[0]!.pages;
      // The connection's first turn also plans the function's statements (catalog pages): it
      // is not measured. Then several: plpgsql plans a statement for its values five times,
      // then may settle on a generic plan; each must stay small.
      await writeEvents(db, NEW, null);
      await sequenceJobEvents(db, 1000);
      for (let turn = 0; turn < 7; turn++) {
        await writeEvents(db, NEW, null);
        const touched = await buffersTouched(db, 'select pie_sequence_job_events(1000)');
        // Numbering a row rewrites it and adds three index entries: about a dozen pages each.
        assert.ok(
          touched < tablePages / 4,
          `turn ${turn + 1} touched ${touched} pages to number ${NEW} events; ` +
            `the log's table has ${tablePages}`,
        );
      }
      const head = await sequenceJobEvents(db, 1000);
      assert.equal(head, KEPT + 8 * NEW, 'every new event was numbered, in turn');
      const { rows: unnumbered } = await db.query<{ n: number }>(
        'select count(*)::int as n from job_events where position is null',
      );
      assert.equal(unnumbered[0]!.n, 0);
    });

    it('numbers a backlog in time linear in it, whatever the statistics last saw', async () => {
      const { db } = database;
      // The statistics (taken above, with nothing to number) say no row waits. A plan trusting
      // them joined each waiting row to a rescan of the turn's rows: a turn over a backlog took
      // over a minute under the bench's load.
      await writeEvents(db, BACKLOG, null);
      const touched = await buffersTouched(db, `select pie_sequence_job_events(${TURN})`);
      // About a dozen pages an event numbered (see above); the joined rescans touched 69,141.
      assert.ok(touched < TURN * 20, `one turn touched ${touched} pages to number ${TURN} events`);
      const head = await sequenceJobEvents(db, TURN);
      const { rows } = await db.query<{ n: number }>(
        'select count(*)::int as n from job_events where position is null',
      );
      assert.equal(rows[0]!.n, BACKLOG - 2 * TURN, 'two turns numbered two turns of events');
      assert.equal(head, KEPT + 8 * NEW + 2 * TURN);
      // Positions follow seq, with no gap and no repeat, across the turns.
      const { rows: order } = await db.query<{
        numbered: number;
        span: number;
        misordered: number;
      }>(
        `select count(*)::int as numbered, (max(position) - min(position) + 1)::int as span,
           count(*) filter (where seq < before)::int as misordered
         from (select position, seq, lag(seq) over (order by position) as before
               from job_events where position > $1) run`,
        [KEPT],
      );
      assert.deepEqual(order[0], {
        numbered: 8 * NEW + 2 * TURN,
        span: 8 * NEW + 2 * TURN,
        misordered: 0,
      });
    });
  });
}
