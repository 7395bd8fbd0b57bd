import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { it } from 'node:test';
import type { Database } from '../../src/db/database.js';
import { JobEventLog, type JobEventSink } from '../../src/lifecycle/job-event-log.js';
import { JobEventBus } from '../../src/lifecycle/job-events.js';

/**
 * A database whose sequencer statement takes `turnMs` and numbers one event each time; it
 * counts the turns. Nothing follows the log, so the sequencer is all it is asked.
 */
function sequencingDatabase(turnMs: number, backend: Database['backend'] = 'pglite') {
  let head = 0;
  const counter = { turns: 0 };
  const db = {
    backend,
    async query(sql: string) {
      if (!sql.includes('pie_sequence_job_events')) return { rows: [] };
      counter.turns += 1;
      await sleep(turnMs);
      head += 1;
      return { rows: [{ head: String(head) }] };
    },
    listen: async () => async () => undefined,
  } as unknown as Database;
  return { db, counter };
}

/** Asks for a turn every 2 ms for `ms`, as a process committing job changes all along does. */
async function askAllAlong(log: JobEventLog, ms: number) {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    log.sequenceSoon();
    await sleep(2);
  }
}

it('spaces sequencer turns by nine times the last one, so numbering takes a tenth of the time', async () => {
  // Turns of 20 ms: 10 ms apart they would be 30 ms each, about 33 a second. Spaced, each waits
  // 100 ms (nine times 20 is 180, capped at 100), about 8 a second.
  const { db, counter } = sequencingDatabase(20);
  const log = await JobEventLog.open(db, { pollMs: 60_000 });
  await askAllAlong(log, 1000);
  await log.close();
  assert.ok(counter.turns >= 4, `${counter.turns} turns: the sequencer still runs`);
  assert.ok(counter.turns <= 12, `${counter.turns} turns in a second of 20 ms turns`);
});

it('numbers about 10 ms after a change when turns are quick', async () => {
  // Turns of 1 ms wait the 10 ms floor: about 45 in half a second, and never only a few.
  const { db, counter } = sequencingDatabase(1);
  const log = await JobEventLog.open(db, { pollMs: 60_000 });
  await askAllAlong(log, 500);
  await log.close();
  assert.ok(counter.turns >= 15, `${counter.turns} turns in half a second of 1 ms turns`);
});

it('closes at once while a turn waits to start, and does not take that turn', async () => {
  const { db, counter } = sequencingDatabase(20);
  const log = await JobEventLog.open(db, { pollMs: 60_000 });
  log.sequenceSoon();
  await sleep(60); // the first turn (10 ms, then 20 ms) is over; the next would wait 100 ms
  assert.equal(counter.turns, 1);
  log.sequenceSoon();
  const started = performance.now();
  await log.close();
  const closedMs = performance.now() - started;
  await sleep(150);
  assert.ok(closedMs < 50, `close took ${closedMs.toFixed(0)} ms`);
  assert.equal(counter.turns, 1, 'no turn after the close');
});

/** Job changes committed all along for `ms`, as the bus tells them. */
async function changeAllAlong(bus: JobEventBus, ms: number) {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    bus.publish([{ type: 'queued', jobType: 'inference', count: 1, wake: 'w' }]);
    await sleep(5);
  }
}

const quietSink: JobEventSink = {
  send: () => true,
  reset: () => true,
  drained: async () => true,
  end: () => undefined,
  cutOff: () => undefined,
};

/** A log on a sequencing database of `backend`, following a bus of job changes. */
async function followingLog(backend: Database['backend'], pollMs: number) {
  const { db, counter } = sequencingDatabase(1, backend);
  const log = await JobEventLog.open(db, { pollMs });
  const bus = new JobEventBus();
  log.follow(bus);
  return { log, bus, counter };
}

it('on the embedded database, numbers changes at the poll while no stream follows', async () => {
  const { log, bus, counter } = await followingLog('pglite', 200);
  try {
    await changeAllAlong(bus, 500);
    // The poll's turns only (two or three in half a second), not one after each change.
    assert.ok(counter.turns <= 3, `${counter.turns} turns with nobody following`);
    const stop = await log.stream('client-a', 'domain-a', undefined, quietSink);
    const before = counter.turns;
    await changeAllAlong(bus, 500);
    stop();
    assert.ok(counter.turns - before >= 10, `${counter.turns - before} turns with a stream open`);
  } finally {
    await log.close();
  }
});

it('on PostgreSQL, numbers changes as they come even with no stream here (others may follow)', async () => {
  const { log, bus, counter } = await followingLog('postgres', 60_000);
  try {
    await changeAllAlong(bus, 500);
    assert.ok(counter.turns >= 10, `${counter.turns} turns in half a second of changes`);
  } finally {
    await log.close();
  }
});
