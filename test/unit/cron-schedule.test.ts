import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cronProblems, CronSchedule, timeZoneProblems } from '../../src/domain/cron-schedule.js';

function schedule(cron: string, timezone = 'UTC'): CronSchedule {
  const parsed = CronSchedule.parse(cron, timezone);
  if (!parsed.ok) throw new Error(parsed.problems.join('; '));
  return parsed.schedule;
}

/**
 * The ticks a scheduler polling on a fixed clock fires, from `start`: each firing `lateMs`
 * after its tick takes the first tick after the time it fired, as the scheduler does.
 */
function firings(cron: CronSchedule, start: string, count: number, lateMs = 250): string[] {
  const ticks: string[] = [];
  let clock = new Date(start);
  for (let i = 0; i < count; i += 1) {
    const tick = cron.nextAfter(clock);
    assert.ok(tick, 'the schedule has a next tick');
    ticks.push(tick.toISOString());
    clock = new Date(tick.getTime() + lateMs);
  }
  return ticks;
}

describe('cron schedules', () => {
  describe('02:30 in Australia/Adelaide across daylight saving', () => {
    const nightly = schedule('30 2 * * *', 'Australia/Adelaide');

    it('October, clocks go forward at 02:00 on the 4th: 02:30 does not exist and fires at 03:00', () => {
      assert.deepEqual(firings(nightly, '2026-10-02T00:00:00Z', 3), [
        '2026-10-02T17:00:00.000Z', // 3 Oct 02:30 ACST (+09:30)
        '2026-10-03T16:30:00.000Z', // 4 Oct 03:00 ACDT (+10:30), the first time after the gap
        '2026-10-04T16:00:00.000Z', // 5 Oct 02:30 ACDT
      ]);
    });

    it('April, clocks go back at 03:00 on the 5th: 02:30 happens twice and fires once, the first time', () => {
      assert.deepEqual(firings(nightly, '2026-04-03T00:00:00Z', 3), [
        '2026-04-03T16:00:00.000Z', // 4 Apr 02:30 ACDT (+10:30)
        '2026-04-04T16:00:00.000Z', // 5 Apr 02:30 ACDT, not again at 02:30 ACST (17:00Z)
        '2026-04-05T17:00:00.000Z', // 6 Apr 02:30 ACST (+09:30)
      ]);
    });
  });

  it('6 fields put seconds first: every second, strictly after the time given', () => {
    const everySecond = schedule('* * * * * *');
    assert.deepEqual(firings(everySecond, '2026-01-01T00:00:13.000Z', 3, 0), [
      '2026-01-01T00:00:14.000Z',
      '2026-01-01T00:00:15.000Z',
      '2026-01-01T00:00:16.000Z',
    ]);
    assert.equal(
      everySecond.nextAfter(new Date('2026-01-01T00:00:13.999Z'))?.toISOString(),
      '2026-01-01T00:00:14.000Z',
    );
  });

  it('a tick long overdue is followed by the first tick after now, not by the ones missed', () => {
    const everyMinute = schedule('* * * * *');
    // The scheduler fires the overdue tick once, then owes the first tick after its clock.
    const now = new Date('2026-01-01T10:00:30Z');
    assert.equal(everyMinute.nextAfter(now)?.toISOString(), '2026-01-01T10:01:00.000Z');
  });

  it('takes 5 or 6 fields and names what is wrong with anything else', () => {
    assert.deepEqual(cronProblems('*/15 * * * *'), []);
    assert.deepEqual(cronProblems('0 30 2 * * MON-FRI'), []);
    const cases: [string, RegExp][] = [
      ['* * * *', /has 4 fields; it needs 5 .* or 6 \(second first\)/],
      ['0 0 0 1 1 * 2030', /has 7 fields/],
      ['@daily', /has 1 field;/],
      ['2030-01-01T00:00:00', /has 1 field;/],
      ['', /has 0 fields/],
      ['61 * * * *', /cron "61 \* \* \* \*" is not valid: .*minute/],
      ['0 0 30 2 *', /never fires/],
    ];
    for (const [cron, problem] of cases) {
      const problems = cronProblems(cron);
      assert.equal(problems.length, 1, `${JSON.stringify(cron)}: ${problems.join('; ')}`);
      assert.match(problems[0]!, problem);
    }
  });

  it('takes IANA time zone names and nothing else', () => {
    for (const zone of ['UTC', 'Australia/Adelaide', 'america/new_york', 'Etc/GMT+5']) {
      assert.deepEqual(timeZoneProblems(zone), [], zone);
    }
    for (const zone of ['Mars/Olympus_Mons', '+05:30', 'Z', '']) {
      assert.match(timeZoneProblems(zone)[0] ?? '', /is not an IANA time zone/, zone);
    }
    const parsed = CronSchedule.parse('61 * * * *', 'Mars/Olympus_Mons');
    assert.equal(parsed.ok, false);
    assert.equal(!parsed.ok && parsed.problems.length, 2, 'both problems are named');
  });
});
