import type { Caller } from '../auth/caller.js';
import type { JobEventSink } from '../lifecycle/job-event-log.js';
import { readJobEvents, type JobStatusChange } from '../repositories/job-events.repository.js';
import type { AppContext } from './context.js';
import { getJob, type JobRef } from './jobs.usecase.js';
import { requireDomain } from './tenant-lookup.js';

export type { JobEventSink } from '../lifecycle/job-event-log.js';
export type { JobEventRecord, JobStatusChange } from '../repositories/job-events.repository.js';

export interface JobEventStreamInput {
  clientId: string;
  domainId: string;
  /** Resume after this position; undefined: from now on. */
  lastEventId: number | undefined;
}

/** A domain's event stream, checked and ready to start once the response has begun. */
export interface JobEventStream {
  /** Catches up from `lastEventId`, then follows live; resolves with a function that stops it. */
  start(sink: JobEventSink): Promise<() => void>;
}

/**
 * Opens a domain's job event stream. The caller's right to the client was checked with the
 * route's scope; here the domain must exist (404) before anything is streamed, so that every
 * refusal is an ordinary JSON answer and only a stream that will run starts with a 200.
 */
export async function openJobEventStream(
  ctx: AppContext,
  _caller: Caller,
  input: JobEventStreamInput,
): Promise<JobEventStream> {
  await requireDomain(ctx.db, input.clientId, input.domainId);
  return {
    start: (sink) => ctx.eventLog.stream(input.clientId, input.domainId, input.lastEventId, sink),
  };
}

/**
 * The most changes a job's timeline answers: its latest ones. A job changes status at most three
 * times per attempt (dispatched, running, then queued or final) and has at most 100 attempts,
 * so only a job released again and again by processes shutting down (a release gives its
 * attempt back) could have more; its timeline then starts part-way, as if the log were pruned.
 */
export const JOB_TIMELINE_LIMIT = 1000;

export interface JobTimeline {
  /** The job's kept changes, oldest first. */
  items: JobStatusChange[];
  /** Whether `items` start at the job's creation, so that they are its whole history. */
  complete: boolean;
}

/**
 * A job's status changes from the job event log, with the attempt of each: a 404 as the job's
 * own read answers for a job that does not exist. Only numbered events are read, the ones the
 * domain's stream has sent or is about to: a change committed a moment ago (the sequencer
 * numbers it within milliseconds) may be missing, as from the stream. Numbering it here would
 * make a read write to the log, and a reader who wants it follows the stream, whose event then
 * says that a re-read will find it.
 */
export async function getJobTimeline(
  ctx: AppContext,
  caller: Caller,
  input: JobRef,
): Promise<JobTimeline> {
  await getJob(ctx, caller, input);
  const items = await readJobEvents(
    ctx.db,
    input.clientId,
    input.domainId,
    input.jobId,
    JOB_TIMELINE_LIMIT,
  );
  return { items, complete: items[0]?.previous_status === null };
}
