import assert from 'node:assert/strict';
import type { TestServer } from './test-server.js';

/** A schedule as the API answers it. */
export interface Schedule {
  client_id: string;
  domain_id: string;
  name: string;
  cron: string;
  timezone: string;
  action: Record<string, unknown>;
  priority: number | null;
  status: 'active' | 'paused';
  next_run_at: string | null;
  last_run_at: string | null;
  last_batch_id: string | null;
  last_job_id: string | null;
  last_error: string | null;
  created_at: string;
  updated_at: string;
}

/**
 * Moves the tick a schedule owes `ago` into the past (an interval, e.g. '1 hour'), so that a
 * test can fire it at once instead of waiting for it.
 */
export async function makeTickDue(
  server: TestServer,
  schedule: { clientId: string; domainId: string; name: string },
  ago = '1 hour',
): Promise<void> {
  const { rowCount } = await server.db.query(
    `update schedules set next_run_at = date_trunc('milliseconds', now()) - $4::interval
     where client_id = $1 and domain_id = $2 and name = $3`,
    [schedule.clientId, schedule.domainId, schedule.name, ago],
  );
  assert.equal(rowCount, 1, `schedule ${schedule.name} made due`);
}
