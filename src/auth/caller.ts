/** What a token may do: each route needs one scope; `admin` allows everything. */
export const SCOPES = [
  'admin',
  'read',
  'registry:write',
  'tenants:write',
  'assignments:write',
  'jobs:write',
  'jobs:complete',
] as const;
export type Scope = (typeof SCOPES)[number];

/** A list of ids a token may act on, or every id. */
export type Grant = '*' | readonly string[];

/** Who is calling, as proven by a verified token. */
export interface Caller {
  subject: string;
  scopes: ReadonlySet<Scope>;
  clients: Grant;
  models: Grant;
  /** Set for a job's callback token: it may complete or heartbeat that attempt only. */
  job?: { jobId: string; attempt: number };
}

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

export function hasScope(caller: Caller, scope: Scope): boolean {
  return caller.scopes.has('admin') || caller.scopes.has(scope);
}

export function grants(grant: Grant, id: string): boolean {
  return grant === '*' || grant.includes(id);
}

/**
 * The caller PIE itself acts as when a tenant's standing instruction runs without a request (a
 * schedule's tick): the rights of that tenant, every model included, and nothing beyond it.
 * The subject names the instruction, for whatever records who started a job.
 */
export function tenantAgent(subject: string, clientId: string): Caller {
  return { subject, scopes: new Set(['jobs:write']), clients: [clientId], models: '*' };
}
