import type { FastifyInstance, FastifyRequest } from 'fastify';
import { grants } from '../auth/caller.js';
import type { Metrics } from '../observability/metrics.js';
import { TokenBuckets } from '../limits/token-buckets.js';

export interface RateLimitOptions {
  /** Requests per second per client; 0 turns the limit off. */
  rps: number;
  /** Bucket size: requests a client may make at once after being idle. */
  burst: number;
  /** How long a refused request waits for its 429 (default REFUSAL_HOLD_MS). */
  holdMs?: number;
}

/**
 * A refused request gets its 429 after a pause of about this long (from half to one and a half
 * times it, at random, so that connections refused together do not all come back together).
 * A client that asks again as soon as it is refused (a closed loop: a retry loop, a pool of
 * workers) is thus refused about once every 2 s per connection, instead of as fast as this
 * process can answer: on one event loop, answering a flood of 429s would take the time other
 * clients' requests need. Waiting costs a timer, not CPU; a client that honours Retry-After
 * pays the pause once per refusal, on top of a wait it was making anyway.
 */
export const REFUSAL_HOLD_MS = 2000;

/** Past this many held answers (say, a flood over thousands of connections), 429s go at once. */
const MAX_HELD = 1000;

/**
 * Limits each client's request rate on the routes of `app` (the /v2 API; health, metrics and
 * the docs stay free). Registered after the token check, so unauthenticated requests are 401s
 * that spend nobody's budget, and before body parsing, so a refused request costs little.
 * Limits are per process: N processes behind a balancer allow N times the rate.
 */
export function limitRequestRates(
  app: FastifyInstance,
  options: RateLimitOptions,
  metrics: Metrics,
): void {
  if (options.rps <= 0) return;
  const buckets = new TokenBuckets(options.rps, options.burst);
  const holdMs = options.holdMs ?? REFUSAL_HOLD_MS;
  let held = 0;
  app.addHook('onRequest', async (request, reply) => {
    const take = buckets.take(rateLimitKey(request));
    if (take.allowed) return;
    metrics.rateLimited.inc({ reason: 'rate_limit' });
    if (holdMs > 0 && held < MAX_HELD) {
      held += 1;
      try {
        await new Promise((resolve) => setTimeout(resolve, holdMs * (0.5 + Math.random())));
      } finally {
        held -= 1;
      }
    }
    // Answered here rather than thrown to the error handler: the same body, without building
    // an error and its stack for each refusal of a flood.
    return reply
      .status(429)
      .header('retry-after', String(take.retryAfterS))
      .send({
        success: false,
        message:
          `too many requests: the limit is ${options.rps} per second per client ` +
          `(bursts of ${options.burst}); retry after ${take.retryAfterS} s`,
      });
  });
}

/**
 * Whose budget a request spends: the tenant named in its path, so one tenant's callers share
 * one budget and cannot starve another tenant, else the token's subject (registry, worker and
 * completion routes). A token naming a client it holds no grant for spends its own budget: it
 * will get a 403, and must not be able to exhaust that client's.
 */
export function rateLimitKey(request: FastifyRequest): string {
  const clientId = (request.params as Record<string, string> | undefined)?.['client_id'];
  if (clientId !== undefined && grants(request.caller.clients, clientId)) {
    return `client:${clientId}`;
  }
  return `subject:${request.caller.subject}`;
}
