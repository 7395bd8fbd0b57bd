import { Type } from '@sinclair/typebox';
import { named, Timestamp } from './common.schemas.js';
import { STATUS_COUNT_FIELDS } from './jobs.schemas.js';

const zeros = { queued: 0, dispatched: 0, running: 0, success: 0, failure: 0, cancelled: 0 };

export const JobStatusCounts = named(
  'JobStatusCounts',
  Type.Object(STATUS_COUNT_FIELDS, {
    description: 'How many jobs are in each status now; every status is present, 0 when none.',
    examples: [{ queued: 12, dispatched: 3, running: 5, success: 10412, failure: 7, cancelled: 2 }],
  }),
);

export const ThroughputBucket = named(
  'ThroughputBucket',
  Type.Object(
    { at: { ...Timestamp, description: 'The start of the minute.' }, ...STATUS_COUNT_FIELDS },
    {
      description:
        'How many jobs entered each status in one minute: `queued` counts jobs created and ' +
        'retries back to the queue, `success` and `failure` completions, and so on.',
      examples: [{ at: '2026-11-29T09:01:00.000Z', ...zeros, queued: 4, success: 3 }],
    },
  ),
);

export const Throughput = named(
  'Throughput',
  Type.Object(
    {
      bucket_s: Type.Integer({ description: 'Seconds per bucket: 60.', examples: [60] }),
      since: { ...Timestamp, description: 'The start of the first bucket.' },
      buckets: Type.Array(ThroughputBucket, {
        minItems: 60,
        maxItems: 60,
        description:
          'The last 60 minutes, oldest first, one bucket each (zeros when nothing happened); ' +
          'the last is the minute under way.',
      }),
    },
    { description: 'The last hour, minute by minute.' },
  ),
);

export const JobStats = named(
  'JobStats',
  Type.Object(
    {
      as_of: {
        ...Timestamp,
        description:
          "The database's clock when the statistics were read. They lag the jobs' own changes " +
          "by the event log's turn (milliseconds; at most PIE_EVENTS_POLL_MS).",
      },
      jobs_by_status: JobStatusCounts,
      throughput: Throughput,
    },
    {
      description:
        'Jobs by status and the last hour of throughput, from counters PIE keeps as jobs ' +
        'change: reading them costs the same for ten jobs or a million.',
    },
  ),
);
