import type { ServerResponse } from 'node:http';
import type { Metrics } from '../observability/metrics.js';
import type { JobEventRecord, JobEventSink } from '../usecases/job-events.usecase.js';

export interface SseOptions {
  /** Seconds between `: keep-alive` comments. */
  heartbeatS: number;
  /** Bytes the response may hold unsent before the consumer is cut off. */
  maxBufferBytes: number;
}

export const SSE_DEFAULTS: SseOptions = { heartbeatS: 15, maxBufferBytes: 1024 * 1024 };

/** One event in the Server-Sent Events format: `id`, `event: job`, one line of JSON. */
export function formatJobEvent(event: JobEventRecord): string {
  const data = {
    job_id: event.job_id,
    status: event.status,
    previous_status: event.previous_status,
    job_type: event.job_type,
    service_id: event.service_id,
    model_id: event.model_id,
    model_version: event.model_version,
    attempt: event.attempt,
    updated_at: event.updated_at,
  };
  return `id: ${event.position}\nevent: job\ndata: ${JSON.stringify(data)}\n\n`;
}

/**
 * A job event stream written to an HTTP response. Memory per stream is bounded by what Node
 * holds unsent for the socket (`writableLength`): once the kernel's buffers are full because
 * the consumer stopped reading, everything written piles up there, so when it passes
 * `maxBufferBytes` the connection is closed. A consumer cut off reconnects with its
 * Last-Event-ID and catches up from the database, which keeps the events anyway.
 */
export class SseSink implements JobEventSink {
  private closed = false;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly onClosed: (() => void)[] = [];
  /** Resolves when the response closed (consumer gone, cut off or ended). */
  readonly done = new Promise<void>((resolve) => this.onClosed.push(resolve));

  constructor(
    private readonly res: ServerResponse,
    private readonly options: SseOptions,
    private readonly metrics: Metrics,
  ) {
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      // Proxies that buffer responses (nginx) would hold the events back.
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    metrics.eventStreamsOpen.inc();
    res.on('close', () => this.onClose());
    this.heartbeat = setInterval(() => this.write(': keep-alive\n\n'), options.heartbeatS * 1000);
  }

  send(events: readonly JobEventRecord[]): boolean {
    if (events.length === 0) return !this.closed;
    const ok = this.write(events.map(formatJobEvent).join(''));
    if (ok) this.metrics.eventsSent.inc(events.length);
    return ok;
  }

  reset(position: number, reason: string): boolean {
    const data = JSON.stringify({ last_event_id: String(position), reason });
    return this.write(`id: ${position}\nevent: reset\ndata: ${data}\n\n`);
  }

  /**
   * Waits for the consumer to take what was sent (a stream catching up writes page by page).
   * A consumer that takes nothing for twice the heartbeat interval is cut off.
   */
  async drained(): Promise<boolean> {
    if (this.closed) return false;
    if (!this.res.writableNeedDrain) return true;
    const stalled = this.options.heartbeatS * 2000;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.cutOff();
        resolve();
      }, stalled);
      const finish = () => {
        clearTimeout(timer);
        this.res.off('drain', finish);
        this.res.off('close', finish);
        resolve();
      };
      this.res.on('drain', finish);
      this.res.on('close', finish);
    });
    return !this.closed;
  }

  end(): void {
    if (!this.closed) this.res.end();
  }

  cutOff(): void {
    if (this.closed) return;
    this.metrics.eventStreamsCutOff.inc();
    this.res.destroy();
    this.onClose();
  }

  /**
   * Writes unless what was written before is still unsent beyond the limit: a consumer keeping
   * up has taken it by the next write, however large one write is, while one that stopped
   * reading leaves it all there once the kernel's buffers are full. Memory per stream stays
   * below the limit plus one write (at most a page of events).
   */
  private write(text: string): boolean {
    if (this.closed) return false;
    if (this.res.writableLength > this.options.maxBufferBytes) {
      this.cutOff();
      return false;
    }
    this.res.write(text);
    return true;
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    this.metrics.eventStreamsOpen.dec();
    for (const resolve of this.onClosed) resolve();
  }
}
