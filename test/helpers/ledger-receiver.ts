import http from 'node:http';
import type { Envelope } from '../../src/domain/delivery.js';
import { verifyWebhook } from '../../src/dispatch/handlers/webhook-signature.js';
import { postSuccess, RECEIVER_SECRET } from './completing-receiver.js';
import { closeServer, listenOnLoopback } from './loopback.js';
import { sleep } from './wait.js';

/** The webhook secret the ledger's model versions are given (the completing receiver's). */
export const LEDGER_SECRET = RECEIVER_SECRET;

export interface Receipt {
  job_id: string;
  attempt: number;
  webhook_id: string;
}

export interface Completion {
  job_id: string;
  attempt: number;
  /** PIE's answer: 200 means this completion was the one that took effect (or its replay). */
  status: number;
}

/**
 * An http model handler that keeps a ledger: every delivery it receives (a receipt) and every
 * completion PIE accepted. It accepts each delivery (202), then completes the job through its
 * callback with an output naming the attempt, retrying while PIE is down or answers 5xx (the
 * tests kill PIE, stop its database, or shut it down on purpose).
 *
 * Each answer comes `delayMs` (or the envelope's `input.delay_ms`) after the delivery. A
 * delivery whose envelope `input.hold` is true is held without an answer until `unhold()`. Either way, a delivery PIE gave up on
 * meanwhile (it closed the connection, or died) is never completed: the handler did not accept
 * it.
 */
export class LedgerReceiver {
  readonly receipts: Receipt[] = [];
  readonly completions: Completion[] = [];
  badSignatures = 0;
  url = '';
  private server!: http.Server;
  private closed = false;
  private holding = true;
  private readonly held = new Set<() => void>();
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly delayMs = 0) {}

  async start(): Promise<void> {
    this.server = http.createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        if (!verifyWebhook(LEDGER_SECRET, request.headers, body)) this.badSignatures += 1;
        const envelope = JSON.parse(body) as Envelope;
        this.receipts.push({
          job_id: envelope.job_id,
          attempt: envelope.attempt,
          webhook_id: String(request.headers['webhook-id']),
        });
        const accept = () => {
          if (response.destroyed) return; // PIE gave up on this delivery
          response.writeHead(202).end();
          this.track(this.complete(envelope));
        };
        const delay = envelope.input['delay_ms'];
        const delayMs = typeof delay === 'number' ? delay : this.delayMs;
        if (envelope.input['hold'] === true && this.holding) {
          this.held.add(accept);
          response.on('close', () => this.held.delete(accept));
        } else if (delayMs > 0) {
          setTimeout(accept, delayMs);
        } else {
          accept();
        }
      });
    });
    this.server.keepAliveTimeout = 1000;
    this.url = `http://127.0.0.1:${await listenOnLoopback(this.server)}/hook`;
  }

  /** Deliveries received but not answered yet. */
  get heldCount(): number {
    return this.held.size;
  }

  /** Answers the held deliveries, and every later one at once. */
  unhold(): void {
    this.holding = false;
    for (const accept of [...this.held]) accept();
    this.held.clear();
  }

  private track(work: Promise<void>): void {
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }

  private async complete(envelope: Envelope): Promise<void> {
    const deadline = Date.now() + 90_000;
    while (!this.closed && Date.now() < deadline) {
      try {
        const status = await postSuccess(envelope);
        // 200: done; 409: a newer attempt or a finished job settled it. 5xx: try again.
        if (status < 500) {
          this.completions.push({ job_id: envelope.job_id, attempt: envelope.attempt, status });
          return;
        }
      } catch {
        // PIE is down or restarting; try again shortly.
      }
      await sleep(200);
    }
  }

  /** Per job: receipts, attempts and accepted (2xx) completions. */
  summary() {
    const attempts = new Map<string, number[]>();
    for (const receipt of this.receipts) {
      attempts.set(receipt.job_id, [...(attempts.get(receipt.job_id) ?? []), receipt.attempt]);
    }
    const effects = new Map<string, number>();
    for (const completion of this.completions) {
      if (completion.status >= 200 && completion.status < 300) {
        effects.set(completion.job_id, (effects.get(completion.job_id) ?? 0) + 1);
      }
    }
    return { attempts, effects };
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled([...this.pending]);
    await closeServer(this.server);
  }
}
