import client from 'prom-client';

/** What the queue gauges show, as the jobs table has it. */
export interface QueueReading {
  queued: { priority: number; queue: string; jobs: number }[];
  heldBack: { version: number; client: number };
  openBatches: number;
}

/** How long one read of the queue serves scrapes: the gauges of one scrape share it. */
const QUEUE_READ_REUSE_MS = 250;

/**
 * Prometheus metrics of one process (`GET /metrics`). Counters count what this process did;
 * sum them across processes in Prometheus.
 */
export class Metrics {
  readonly registry = new client.Registry();

  readonly jobsCreated = new client.Counter({
    name: 'pie_jobs_created_total',
    help: 'Jobs created, by job type.',
    labelNames: ['job_type'] as const,
    registers: [this.registry],
  });

  readonly jobsRedriven = new client.Counter({
    name: 'pie_jobs_redriven_total',
    help: 'Jobs started again from failed or cancelled ones (retry routes), by job type; also counted in pie_jobs_created_total.',
    labelNames: ['job_type'] as const,
    registers: [this.registry],
  });

  readonly jobsFinished = new client.Counter({
    name: 'pie_jobs_finished_total',
    help: 'Jobs that reached a final status, by job type and status.',
    labelNames: ['job_type', 'status'] as const,
    registers: [this.registry],
  });

  readonly dispatchLatency = new client.Histogram({
    name: 'pie_dispatch_latency_seconds',
    help: 'From the job being committed to a handler receiving it.',
    labelNames: ['handler'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [this.registry],
  });

  readonly attempts = new client.Counter({
    name: 'pie_dispatch_attempts_total',
    help: 'Dispatch attempts, by handler kind and outcome.',
    labelNames: ['handler', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly cancellationsDelivered = new client.Counter({
    name: 'pie_cancellations_delivered_total',
    help: 'Cancels told to the handler that had the job, by handler kind and outcome: delivered (the handler took it, or its command was stopped), failed (best effort: not retried), dropped (too many waiting, or shutting down).',
    labelNames: ['handler', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly httpDuration = new client.Histogram({
    name: 'pie_http_request_duration_seconds',
    help: 'HTTP request durations, by method, route and status code.',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly rateLimited = new client.Counter({
    name: 'pie_rate_limited_total',
    help: 'Requests answered 429, by reason: rate_limit (requests per second) or open_jobs (quota).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly vacuumDuration = new client.Histogram({
    name: 'pie_vacuum_seconds',
    help: "How long each of PIE's own vacuums took (where no autovacuum runs: always on PGlite).",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  readonly retentionDeleted = new client.Counter({
    name: 'pie_retention_deleted_total',
    help: 'Rows retention deleted: finished jobs (jobs) and batches (batches) past PIE_RETENTION_DAYS, idempotency records past 24 h (idempotency), job events past PIE_EVENTS_RETENTION_S (events), minutes of job activity past 2 h (activity).',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly batchesFinished = new client.Counter({
    name: 'pie_batches_finished_total',
    help: 'Batches whose last job became final, by kind (init, bulk, schedule), as this process saw them finish.',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly batchSubscriptionsFired = new client.Counter({
    name: 'pie_batch_subscriptions_fired_total',
    help: "batch_complete subscriptions fired by a finished batch, by outcome: started (a job), failed (it could not start one; the batch's triggered_events says why).",
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly debouncedJoins = new client.Counter({
    name: 'pie_debounced_joins_total',
    help: 'Completions that joined the job a debounced subscription was gathering, rather than starting their own.',
    registers: [this.registry],
  });

  readonly batchesOpen = new client.Gauge({
    name: 'pie_batches_open',
    help: 'Batches with jobs not yet final. Read at scrape, like pie_jobs_queued.',
    registers: [this.registry],
    collect: async () => {
      const reading = await this.readQueue();
      if (reading !== undefined) this.batchesOpen.set(reading.openBatches);
    },
  });

  readonly scheduleTicks = new client.Counter({
    name: 'pie_schedule_ticks_total',
    help: "Schedule ticks this process fired, by outcome: fired (the action started its jobs) or failed (it started nothing; the schedule's last_error says why, and the next tick is still owed).",
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly scheduleTicksLate = new client.Counter({
    name: 'pie_schedule_ticks_late_total',
    help: 'Ticks fired after the tick that follows them had come too: ticks were missed (no process could fire them), and this one firing stood for them all. Also counted in pie_schedule_ticks_total.',
    registers: [this.registry],
  });

  readonly scheduleTickLateness = new client.Histogram({
    name: 'pie_schedule_tick_lateness_seconds',
    help: "From a schedule's tick to its firing, on the database's clock.",
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600],
    registers: [this.registry],
  });

  readonly eventStreamsOpen = new client.Gauge({
    name: 'pie_event_streams_open',
    help: 'Job event streams (GET .../domains/{d}/events) open in this process.',
    registers: [this.registry],
  });

  readonly eventsSent = new client.Counter({
    name: 'pie_events_sent_total',
    help: 'Job events written to event streams by this process (one per event per stream).',
    registers: [this.registry],
  });

  readonly eventStreamsCutOff = new client.Counter({
    name: 'pie_event_streams_cut_off_total',
    help: 'Event streams closed because their consumer did not read fast enough (its buffer passed PIE_EVENTS_MAX_BUFFER_BYTES).',
    registers: [this.registry],
  });

  readonly jobsQueued = new client.Gauge({
    name: 'pie_jobs_queued',
    help: 'Jobs waiting in the queues, by priority and queue (push: http, command, truefoundry; pull: workers). Read from the database at scrape: every process reports the same figure, do not sum.',
    labelNames: ['priority', 'queue'] as const,
    registers: [this.registry],
    collect: async () => {
      const reading = await this.readQueue();
      this.jobsQueued.reset();
      for (const row of reading?.queued ?? []) {
        this.jobsQueued.set({ priority: String(row.priority), queue: row.queue }, row.jobs);
      }
    },
  });

  readonly jobsHeldBack = new client.Gauge({
    name: 'pie_jobs_held_back',
    help: 'Queued jobs whose model version (limit="version") or client (limit="client") is at its max_in_flight; a job under both counts in both. Read at scrape, like pie_jobs_queued.',
    labelNames: ['limit'] as const,
    registers: [this.registry],
    collect: async () => {
      const reading = await this.readQueue();
      this.jobsHeldBack.reset();
      if (reading === undefined) return;
      this.jobsHeldBack.set({ limit: 'version' }, reading.heldBack.version);
      this.jobsHeldBack.set({ limit: 'client' }, reading.heldBack.client);
    },
  });

  /** Where the queue gauges read from; unset, they stay empty. */
  private queueSource: (() => Promise<QueueReading>) | undefined;
  /** One read serves both gauges of a scrape. */
  private lastRead: { at: number; reading: Promise<QueueReading | undefined> } | undefined;

  constructor() {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'pie_' });
  }

  /** Gives the queue gauges their source: a read of the jobs table. */
  observeQueue(source: () => Promise<QueueReading>): void {
    this.queueSource = source;
  }

  private readQueue(): Promise<QueueReading | undefined> {
    const source = this.queueSource;
    if (source === undefined) return Promise.resolve(undefined);
    const now = Date.now();
    if (this.lastRead === undefined || now - this.lastRead.at > QUEUE_READ_REUSE_MS) {
      // With the database away the gauges are left empty rather than failing the scrape.
      this.lastRead = { at: now, reading: source().catch(() => undefined) };
    }
    return this.lastRead.reading;
  }
}
