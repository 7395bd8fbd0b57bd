import type { Database } from '../db/database.js';

/** What every use case may reach: the shared resources of one PIE process. */
export interface AppContext {
  db: Database;
}
