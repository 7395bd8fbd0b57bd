import { JOB_TRANSITIONS, type TransitionName } from '../domain/job-status.js';

/**
 * The SQL condition "the job's status is one `transition` may start from", built from the
 * transition table so that the statements and the table cannot drift apart. The statuses are
 * the table's own literals, never input.
 */
export function startsFrom(transition: TransitionName, alias?: string): string {
  const column = alias === undefined ? 'status' : `${alias}.status`;
  const statuses = JOB_TRANSITIONS[transition].from.map((status) => `'${status}'`);
  return `${column} in (${statuses.join(', ')})`;
}

/**
 * A job going back to the queue takes its version's current handler kind, so a version
 * switched between push and pull meanwhile is claimed by the right side.
 */
export const followHandler = (table: string) => `handler_type = coalesce(
  (select v.handler->>'type' from model_versions v
   where v.model_id = ${table}.model_id and v.model_version = ${table}.model_version),
  ${table}.handler_type)`;
