import client from 'prom-client';

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
    help: 'Rows retention deleted: finished jobs past PIE_RETENTION_DAYS (jobs), idempotency records past 24 h (idempotency).',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  constructor() {
    client.collectDefaultMetrics({ register: this.registry, prefix: 'pie_' });
  }
}
