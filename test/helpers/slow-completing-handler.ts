import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { verifyWebhook } from '../../src/dispatch/handlers/webhook-signature.js';
import type { Envelope } from '../../src/domain/delivery.js';
import { closeServer, listenOnLoopback } from './loopback.js';
import { sleep } from './wait.js';

export const SLOW_HANDLER_SECRET = 'whsec_c2xvdy1jb21wbGV0aW5nLWhhbmRsZXItc2VjcmV0';

export interface SlowHandlerOptions {
  /** How long each job "runs": the delivery is answered (202) after this, then completed. */
  workMs: number;
  /** Connections to PIE for completions (they queue beyond this). */
  completionConnections?: number;
  /** Called as each delivery arrives, before the work (the soak times dispatch with it). */
  onDelivery?: (envelope: Envelope, atMs: number) => void;
}

/**
 * A model handler over HTTP for load tests: it verifies each delivery's signature, holds the
 * request for `workMs` as a model that computes before it answers would, answers 202, then
 * completes the job through its callback URL with the job's callback token. Completions go
 * through a bounded pool of keep-alive connections (a load of thousands of jobs would
 * otherwise open a connection each) and are retried while PIE answers 5xx or is unreachable;
 * every answer is counted, so a test can assert that none was a 5xx.
 */
export class SlowCompletingHandler {
  /** Attempts received, by job id. */
  readonly receipts = new Map<string, number[]>();
  deliveries = 0;
  badSignatures = 0;
  /** Completion answers by status code, retries included. */
  readonly completionStatuses: Record<string, number> = {};
  /** Completions that got no answer (PIE unreachable), retries included. */
  completionErrors = 0;
  /** Jobs whose completion PIE accepted (200). */
  completed = 0;
  url = '';
  private server!: http.Server;
  private readonly pools = new Map<string, Pool>();
  private readonly pending = new Set<Promise<void>>();
  private closed = false;

  constructor(
    private readonly secret: string,
    private readonly options: SlowHandlerOptions,
  ) {}

  async start(): Promise<void> {
    this.server = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => this.onDelivery(Buffer.concat(chunks).toString(), request, response));
    });
    // PIE may keep up to its dispatch concurrency of connections open to us.
    this.server.keepAliveTimeout = 5000;
    this.url = `http://127.0.0.1:${await listenOnLoopback(this.server)}/hook`;
  }

  private onDelivery(body: string, request: http.IncomingMessage, response: http.ServerResponse) {
    const at = performance.now();
    this.deliveries += 1;
    if (!verifyWebhook(this.secret, request.headers, body)) {
      this.badSignatures += 1;
      response.writeHead(401).end();
      return;
    }
    const envelope = JSON.parse(body) as Envelope;
    this.receipts.set(envelope.job_id, [
      ...(this.receipts.get(envelope.job_id) ?? []),
      envelope.attempt,
    ]);
    this.options.onDelivery?.(envelope, at);
    setTimeout(() => {
      response.writeHead(202).end();
      const completion = this.complete(envelope);
      this.pending.add(completion);
      void completion.finally(() => this.pending.delete(completion));
    }, this.options.workMs);
  }

  private pool(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (pool === undefined) {
      pool = new Pool(origin, {
        connections: this.options.completionConnections ?? 32,
        headersTimeout: 60_000,
        bodyTimeout: 60_000,
      });
      this.pools.set(origin, pool);
    }
    return pool;
  }

  private async complete(envelope: Envelope): Promise<void> {
    const url = new URL(envelope.callback.url);
    const body = JSON.stringify({ status: 'success', output: { attempt: envelope.attempt } });
    for (let tries = 0; tries < 240 && !this.closed; tries++) {
      try {
        const response = await this.pool(url.origin).request({
          path: url.pathname + url.search,
          method: 'POST',
          headers: {
            authorization: `Bearer ${envelope.callback.token}`,
            'content-type': 'application/json',
          },
          body,
        });
        await response.body.dump();
        const status = response.statusCode;
        this.completionStatuses[status] = (this.completionStatuses[status] ?? 0) + 1;
        if (status === 200) this.completed += 1;
        // 409: a newer attempt or a finished job already settled it; other 4xx will not heal.
        if (status < 500) return;
      } catch {
        this.completionErrors += 1;
      }
      await sleep(250);
    }
  }

  /**
   * Resolves once `count` jobs are completed. Rejects when no job completes for `stallMs` (a
   * lost job shows quickly, however slow the machine) or after `maxMs` in all.
   */
  async waitForCompleted(count: number, limits: { stallMs: number; maxMs: number }) {
    const started = performance.now();
    let progressAt = started;
    let seen = this.completed;
    while (this.completed < count) {
      const now = performance.now();
      if (this.completed > seen) {
        seen = this.completed;
        progressAt = now;
      }
      if (now - progressAt > limits.stallMs || now - started > limits.maxMs) {
        throw new Error(
          `${this.completed} of ${count} jobs completed; none for ` +
            `${((now - progressAt) / 1000).toFixed(0)} s, ${((now - started) / 1000).toFixed(0)} s in all`,
        );
      }
      await sleep(100);
    }
  }

  /** Jobs received under more than one attempt (a retried delivery). */
  retriedJobs(): number {
    let retried = 0;
    for (const attempts of this.receipts.values()) if (attempts.length > 1) retried += 1;
    return retried;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.pending]);
    await Promise.all([...this.pools.values()].map((pool) => pool.close()));
    await closeServer(this.server);
  }
}
