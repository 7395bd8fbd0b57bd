import type { Caller } from '../auth/caller.js';
import type { JobEventSink } from '../lifecycle/job-event-log.js';
import type { AppContext } from './context.js';
import { requireDomain } from './tenant-lookup.js';

export type { JobEventSink } from '../lifecycle/job-event-log.js';
export type { JobEventRecord } from '../repositories/job-events.repository.js';

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
