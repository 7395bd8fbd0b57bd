import type { Grant } from '../auth/caller.js';
import type { Database, Queryable } from '../db/database.js';
import type { Handler, HandlerType } from '../domain/handlers.js';
import { inFlight } from '../repositories/indexed-job-sets.js';
import { TRIGGER_COLUMN, type Job } from '../repositories/jobs.repository.js';
import { iso, json } from '../repositories/rows.js';
import { startsFrom } from './transition-sql.js';

/** A job claimed for one attempt, with what delivering it needs. */
export interface ClaimedJob extends Pick<
  Job,
  | 'job_id'
  | 'client_id'
  | 'domain_id'
  | 'service_id'
  | 'assignment_id'
  | 'assignment_key'
  | 'model_id'
  | 'model_version'
  | 'job_type'
  | 'input'
  | 'features'
  | 'config'
  | 'trigger'
  | 'attempt'
  | 'max_attempts'
  | 'deadline'
  | 'created_at'
> {
  handler: Handler;
  /** The trace context stored with the job (see migration 000015); null when none was. */
  traceparent: string | null;
}

interface ClaimedRow extends Omit<ClaimedJob, 'deadline' | 'created_at'> {
  deadline_at: Date;
  created_at: Date;
}

const CLAIMED = `j.job_id, j.client_id, j.domain_id, j.service_id, j.assignment_id, j.assignment_key,
  j.model_id, j.model_version, j.job_type, j.input, j.features, j.config,
  ${TRIGGER_COLUMN('j.')}, j.attempt,
  j.max_attempts, j.deadline_at, j.created_at, v.handler, j.traceparent`;

function toClaimed(row: ClaimedRow): ClaimedJob {
  const { deadline_at, created_at, ...rest } = row;
  return { ...rest, deadline: iso(deadline_at), created_at: iso(created_at) };
}

const READY_ORDER = 'priority desc, lane_seq, run_at, job_id';

/**
 * Claiming starts the next attempt of the jobs `picked` names (client_id, job_id): status
 * dispatched, attempt + 1, a lease held by `$1` for `$2` seconds. Picking with SKIP LOCKED lets
 * any number of processes claim at once without waiting on or sharing a job.
 */
function updateClaimed(picked: string): string {
  return `update jobs j
     set status = 'dispatched', attempt = j.attempt + 1, locked_by = $1,
         lease_expires_at = now() + make_interval(secs => $2), dispatched_at = now(),
         updated_at = now(), handler_ref = null
     from ${picked}, model_versions v
     where j.client_id = ${picked}.client_id and j.job_id = ${picked}.job_id
       and v.model_id = j.model_id and v.model_version = j.model_version
     returning ${CLAIMED}`;
}

/** What a claim handed out, and whether concurrency limits applied to it. */
export interface Claim {
  jobs: ClaimedJob[];
  /**
   * A `max_in_flight` limit covered this queue: fewer jobs than asked may have been handed out
   * though more are queued, and finishing jobs makes room for more.
   */
  limited: boolean;
}

/** Claims up to `limit` queued jobs whose handler PIE pushes to (http, command, truefoundry). */
export function claimPushJobs(
  db: Database,
  holder: string,
  leaseS: number,
  limit: number,
  kinds: readonly HandlerType[],
): Promise<Claim> {
  return claim(
    db,
    { holder, leaseS, limit },
    {
      jobs: (p) =>
        `handler_type <> 'worker' and run_at <= now() and handler_type = any(${p(kinds)}::text[])`,
      // A version's queued jobs have its handler's kind (a change of handler moves them).
      versions: (p) => `handler->>'type' = any(${p(kinds)}::text[])`,
      clients: () => 'true',
    },
  );
}

/**
 * Claims up to `limit` queued jobs of one model version for a pull worker, of the clients
 * its token names only.
 */
export function claimWorkerJobs(
  db: Database,
  modelId: string,
  modelVersion: string,
  clients: Grant,
  workerId: string,
  leaseS: number,
  limit: number,
): Promise<Claim> {
  const granted = (p: Placeholder, column: string) => {
    const grant = clients === '*' ? null : json(clients);
    return `(${p(grant)}::jsonb is null or ${p(grant)}::jsonb ? ${column})`;
  };
  return claim(
    db,
    { holder: workerId, leaseS, limit },
    {
      jobs: (p) =>
        `handler_type = 'worker' and model_id = ${p(modelId)} and model_version = ${p(modelVersion)}
       and run_at <= now() and ${granted(p, 'client_id')}`,
      versions: (p) => `model_id = ${p(modelId)} and model_version = ${p(modelVersion)}`,
      clients: (p) => granted(p, 'client_id'),
    },
  );
}

/** Adds a value to a statement's parameters and answers its placeholder (`$4`). */
type Placeholder = (value: unknown) => string;

/**
 * The queued jobs a claim may take, as SQL conditions on `jobs`, and the limits that can
 * apply to them: conditions on `model_versions` and `clients` rows (columns unqualified).
 */
interface Queue {
  jobs(p: Placeholder): string;
  versions(p: Placeholder): string;
  clients(p: Placeholder): string;
}

interface Claimant {
  holder: string;
  leaseS: number;
  limit: number;
}

/** A statement's parameters, starting with `first`, and a placeholder for each added one. */
function parameters(first: unknown[]): { values: unknown[]; p: Placeholder } {
  const values = [...first];
  return {
    values,
    p: (value) => {
      values.push(value);
      return `$${values.length}`;
    },
  };
}

/** The version and client limits that cover `queue`, as conditions for `where`. */
function limitsOf(queue: Queue, p: Placeholder) {
  return {
    versions: `select 1 from model_versions where max_in_flight is not null and ${queue.versions(p)}`,
    clients: `select 1 from clients where max_in_flight is not null and ${queue.clients(p)}`,
  };
}

/**
 * Highest priority first, then round-robin across (client, domain) lanes by `lane_seq`
 * (migration 000006 says how it is kept), then oldest first: one scan of the queue's ready
 * index. Without limits on the queue this is one statement; with them, the limited claim.
 */
async function claim(db: Database, claimant: Claimant, queue: Queue): Promise<Claim> {
  // $1 holder, $2 lease seconds; the queue's own values follow. The limit is in the text.
  const { values, p } = parameters([claimant.holder, claimant.leaseS]);
  const limits = limitsOf(queue, p);
  // No limit covers the queue: claim as many as asked. A limit present makes this statement
  // claim nothing (checked once, before the scan), and the limited claim takes over. The
  // answer always has a row saying which, with the claimed job on it when there is one.
  const { rows } = await db.query<Partial<ClaimedRow> & { limited: boolean }>(
    `with covered as (
       select exists (${limits.versions}) or exists (${limits.clients}) as limited
     ), picked as (
       select client_id, job_id from jobs
       where ${startsFrom('claim')} and ${queue.jobs(p)}
         and not (select limited from covered)
       order by ${READY_ORDER}
       limit ${sqlLimit(claimant.limit)}
       for update skip locked
     ), claimed as (
       ${updateClaimed('picked')}
     )
     select covered.limited, claimed.* from covered left join claimed on true`,
    values,
  );
  if (rows[0]?.limited === true) {
    return { jobs: await claimWithinLimits(db, claimant, queue), limited: true };
  }
  const claimed = rows.filter(
    (row): row is ClaimedRow & { limited: boolean } => row.job_id != null,
  );
  return { jobs: claimed.map(({ limited: _limited, ...row }) => toClaimed(row)), limited: false };
}

/**
 * The claim's limit as a literal in its text, not a parameter. With `limit $3` PostgreSQL
 * cannot cost the prepared claim's generic plan (it assumes a tenth of the queue), so once the
 * queue has grown it plans the claim afresh on most calls: ten times as often after the bench's
 * cycle as before it. Each limit is then a statement of its own, as few as the limits asked
 * (`max_jobs` is at most a hundred; the pump asks for its free slots).
 */
function sqlLimit(limit: number): string {
  if (!Number.isSafeInteger(limit) || limit < 0) throw new Error(`bad claim limit ${limit}`);
  return String(limit);
}

/**
 * A claim under `max_in_flight` limits, in one transaction. First the rows of the limits that
 * cover the queue are locked (versions, then clients, each in key order, so claimers never
 * deadlock): claims that could take jobs under the same limit take turns here. The claim that
 * follows is a new statement, so it counts the jobs in flight after the previous turn
 * committed: no two claims can both fill the same room.
 *
 * The claim reads the next `window` queued jobs in the usual order, drops those of a version or
 * client with no room, and takes of the rest at most the room each client and then each
 * version has left. A version or client at its limit is passed over without failing anything;
 * its jobs wait, and a claim may return fewer jobs than asked though more are queued.
 */
async function claimWithinLimits(
  db: Database,
  claimant: Claimant,
  queue: Queue,
): Promise<ClaimedJob[]> {
  return db.transaction(async (tx) => {
    const lock = parameters([]);
    await tx.query(
      `with versions as (
         select 1 from model_versions where max_in_flight is not null and ${queue.versions(lock.p)}
         order by model_id, model_version for no key update
       ), clients as (
         select 1 from clients where max_in_flight is not null and ${queue.clients(lock.p)}
         order by client_id for no key update
       )
       select (select count(*) from versions) as versions, (select count(*) from clients) as clients`,
      lock.values,
    );
    const window = Math.max(claimant.limit * 4, 100);
    const { values, p } = parameters([claimant.holder, claimant.leaseS, claimant.limit]);
    const { rows } = await tx.query<ClaimedRow>(
      `with ahead as (
         select client_id, job_id, model_id, model_version, priority, lane_seq, run_at from jobs
         where ${startsFrom('claim')} and ${queue.jobs(p)}
         order by ${READY_ORDER}
         limit ${p(window)}
       ), version_room as (
         select v.model_id, v.model_version, v.max_in_flight - (
           select count(*) from jobs f
           where f.model_id = v.model_id and f.model_version = v.model_version
             and ${inFlight('f')}) as room
         from model_versions v
         where v.max_in_flight is not null and exists (
           select 1 from ahead a where a.model_id = v.model_id and a.model_version = v.model_version)
       ), client_room as (
         select c.client_id, c.max_in_flight - (
           select count(*) from jobs f
           where f.client_id = c.client_id and ${inFlight('f')}) as room
         from clients c
         where c.max_in_flight is not null
           and exists (select 1 from ahead a where a.client_id = c.client_id)
       ), by_client as (
         select a.*, row_number() over (partition by a.client_id order by ${READY_ORDER}) as nth,
                cr.room
         from ahead a left join client_room cr on cr.client_id = a.client_id
       ), by_version as (
         select b.*, row_number() over (
                  partition by b.model_id, b.model_version order by ${READY_ORDER}) as nth_of_version
         from by_client b
         where b.room is null or b.nth <= b.room
       ), chosen as (
         select b.client_id, b.job_id from by_version b
         left join version_room vr
           on vr.model_id = b.model_id and vr.model_version = b.model_version
         where vr.room is null or b.nth_of_version <= vr.room
         order by ${READY_ORDER}
         limit $3
       ), picked as (
         select j.client_id, j.job_id from jobs j join chosen c using (client_id, job_id)
         where ${startsFrom('claim', 'j')}
         for update of j skip locked
       )
       ${updateClaimed('picked')}`,
      values,
    );
    return rows.map(toClaimed);
  });
}

/** Handed-over jobs whose handler gave a reference to follow (TrueFoundry runs). */
export async function listFollowedJobs(
  q: Queryable,
  handlerType: HandlerType,
  limit: number,
): Promise<(ClaimedJob & { handler_ref: string })[]> {
  const { rows } = await q.query<ClaimedRow & { handler_ref: string }>(
    `select ${CLAIMED}, j.handler_ref from jobs j
     join model_versions v on v.model_id = j.model_id and v.model_version = j.model_version
     where j.handler_ref is not null and j.status in ('dispatched', 'running')
       and j.handler_type = $1
     limit $2`,
    [handlerType, limit],
  );
  return rows.map((row) => ({ ...toClaimed(row), handler_ref: row.handler_ref }));
}
