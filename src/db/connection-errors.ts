import { NoServerFitsError } from './postgres-servers.js';

/**
 * Whether an error means "the database cannot be reached right now" rather than "this query is
 * wrong": the server is down, restarting or refusing connections, or the connection to it
 * broke. Such a request may well succeed a moment later, so it is answered 503 (not 500), and
 * the dispatcher backs off instead of logging a fault per tick.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  return causes(error).some(isConnectionFault);
}

// Socket errors from Node (the server's port is closed, the connection was cut).
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

// SQLSTATEs: the server is shutting down or starting up (57P01 admin_shutdown, 57P02
// crash_shutdown, 57P03 cannot_connect_now), has no connection slot free (53300), or cannot
// write (25006 read_only_sql_transaction: a standby, met during a failover before PIE moved to
// the new primary).
const SQL_STATES = new Set(['57P01', '57P02', '57P03', '53300', '25006']);

// What `pg` and `pg-pool` say when a connection ends or cannot be had in time.
const MESSAGES = [
  /^Connection terminated/,
  /^timeout exceeded when trying to connect/,
  /^Client has encountered a connection error and is not queryable/,
  /^Client was closed and is not queryable/,
];

function isConnectionFault(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  // Several servers listed and none fits yet: the old primary is gone, the new one not promoted.
  if (error instanceof NoServerFitsError) return true;
  const code = 'code' in error && typeof error.code === 'string' ? error.code : undefined;
  if (code !== undefined) {
    // Class 08 is "connection exception".
    if (SOCKET_CODES.has(code) || SQL_STATES.has(code) || /^08[0-9A-Z]{3}$/.test(code)) {
      return true;
    }
  }
  const message = error instanceof Error ? error.message : '';
  return MESSAGES.some((pattern) => pattern.test(message));
}

/** The error, its `cause` chain and, for an AggregateError (several addresses tried), each. */
function causes(error: unknown, depth = 0): unknown[] {
  if (depth > 5 || typeof error !== 'object' || error === null) return [error];
  const nested: unknown[] = [];
  if ('cause' in error && error.cause !== undefined) nested.push(error.cause);
  if (error instanceof AggregateError) nested.push(...(error.errors as unknown[]));
  return [error, ...nested.flatMap((inner) => causes(inner, depth + 1))];
}
