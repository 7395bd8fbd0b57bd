import http from 'node:http';
import type { Envelope } from '../../src/domain/delivery.js';
import { verifyWebhook } from '../../src/dispatch/handlers/webhook-signature.js';
import { closeServer, listenOnLoopback } from './loopback.js';
import { sleep } from './wait.js';

export const RECEIVER_SECRET = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';

/**
 * A model handler over HTTP that keeps a ledger of every delivery it receives, accepts each
 * (202), then completes the job through its callback, retrying while PIE is unreachable (it
 * may have been killed on purpose).
 */
export class CompletingReceiver {
  readonly ledger: { job_id: string; attempt: number; client_id: string }[] = [];
  badSignatures = 0;
  url = '';
  private server!: http.Server;
  private closed = false;
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly delayMs = 0) {}

  async start() {
    this.server = http.createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        if (!verifyWebhook(RECEIVER_SECRET, request.headers, body)) this.badSignatures += 1;
        const envelope = JSON.parse(body) as Envelope;
        this.ledger.push({
          job_id: envelope.job_id,
          attempt: envelope.attempt,
          client_id: envelope.client_id,
        });
        setTimeout(() => {
          response.writeHead(202).end();
          const completion = this.complete(envelope);
          this.pending.add(completion);
          void completion.finally(() => this.pending.delete(completion));
        }, this.delayMs);
      });
    });
    this.server.keepAliveTimeout = 1000;
    this.url = `http://127.0.0.1:${await listenOnLoopback(this.server)}/hook`;
  }

  private async complete(envelope: Envelope): Promise<void> {
    for (let tries = 0; tries < 120 && !this.closed; tries++) {
      try {
        // 200: done; 409: a newer attempt or a finished job already settled it.
        if ((await postSuccess(envelope)) < 500) return;
      } catch {
        // PIE is down; try again shortly.
      }
      await sleep(250);
    }
  }

  async close() {
    this.closed = true;
    await Promise.allSettled([...this.pending]);
    await closeServer(this.server);
  }
}

/**
 * Completes the job of `envelope` through its callback with an output naming the attempt: one
 * try, PIE's status back. Throws when PIE cannot be reached.
 */
export async function postSuccess(envelope: Envelope): Promise<number> {
  const response = await fetch(envelope.callback.url, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${envelope.callback.token}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify({ status: 'success', output: { attempt: envelope.attempt } }),
  });
  await response.arrayBuffer();
  return response.status;
}
