import { Cron } from 'croner';

/**
 * A schedule's cron expression read in its IANA time zone. Parsing, stepping and daylight
 * saving are croner's (see docs/API-CONTRACT.md, Schedules): a time that a DST change skips
 * fires at the first valid time after the gap, and a time that occurs twice fires once, at the
 * first occurrence. PIE adds only what croner allows but a schedule must not be: exactly 5
 * fields, or 6 with seconds first (croner would also take a year field, `@daily`, or a date to
 * fire once), and a pattern that fires at all (`0 0 30 2 *` never does).
 */
export class CronSchedule {
  private constructor(private readonly cron: Cron) {}

  /** The schedule, or the problems with its cron and time zone, each naming what is wrong. */
  static parse(
    expression: string,
    timezone: string,
  ): { ok: true; schedule: CronSchedule } | { ok: false; problems: string[] } {
    const problems = timeZoneProblems(timezone);
    const parsed = parseCron(expression, problems.length === 0 ? timezone : 'UTC');
    if (typeof parsed === 'string') problems.push(parsed);
    if (problems.length > 0 || typeof parsed === 'string') return { ok: false, problems };
    return { ok: true, schedule: new CronSchedule(parsed) };
  }

  /** The first tick strictly after `after`, or null when there is none. */
  nextAfter(after: Date): Date | null {
    return this.cron.nextRun(after);
  }
}

/** What is wrong with a cron expression, whatever its time zone; empty when nothing is. */
export function cronProblems(expression: string): string[] {
  const parsed = parseCron(expression, 'UTC');
  return typeof parsed === 'string' ? [parsed] : [];
}

/**
 * Whether the runtime's time zone database knows `timezone`, as a list of problems. Names are
 * case-insensitive, as in the database; offsets (`+05:30`) are not IANA names, though newer
 * runtimes accept them.
 */
export function timeZoneProblems(timezone: string): string[] {
  const problem = `timezone "${timezone}" is not an IANA time zone (such as "UTC" or "Australia/Adelaide")`;
  if (!/^[A-Za-z]/.test(timezone)) return [problem];
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone });
    return [];
  } catch {
    return [problem];
  }
}

/** croner's reading of the expression, or what is wrong with it. */
function parseCron(expression: string, timezone: string): Cron | string {
  const fields = expression.trim().split(/\s+/).filter(Boolean).length;
  if (fields !== 5 && fields !== 6) {
    return (
      `cron "${expression}" has ${fields} field${fields === 1 ? '' : 's'}; it needs 5 ` +
      '(minute hour day-of-month month day-of-week) or 6 (second first)'
    );
  }
  try {
    // Without a function to run, croner starts no timer: this only reads the pattern, and
    // steps it once in the time zone, which is where a zone croner cannot use would fail.
    const cron = new Cron(expression, { timezone, mode: '5-or-6-parts' });
    return cron.nextRun() === null ? `cron "${expression}" never fires` : cron;
  } catch (error) {
    const reason = error instanceof Error ? error.message.replace(/^CronPattern: /, '') : '';
    return `cron "${expression}" is not valid: ${reason}`;
  }
}
