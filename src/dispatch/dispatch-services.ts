import type { FastifyBaseLogger } from 'fastify';
import type { BackgroundService } from '../services/background-service.js';
import { OutageBackoff } from '../services/outage-backoff.js';
import { ReaperService } from '../services/reaper.service.js';
import type { AppContext } from '../usecases/context.js';
import { ClaimPump } from './claim-pump.js';
import { createHandlerRegistry } from './handlers/handler-registry.js';
import { RunWatcher } from './run-watcher.js';

export interface DispatchOptions {
  /** Who holds the leases this process takes (`locked_by`). */
  holder: string;
  /** Deliveries in flight at once. */
  concurrency: number;
  /** Local command processes at once. */
  commandConcurrency: number;
  /** Whether this process runs `command` handlers at all. */
  commandHandlers: boolean;
  leaseS: number;
  /** The safety-net poll, for wake-ups missed or retries come due. */
  pollMs: number;
  /** How often expired leases and deadlines are checked. */
  reapMs: number;
  /** How often TrueFoundry runs are followed. */
  watchMs: number;
  httpTimeoutMs: number;
  /** Hosts, IPs or CIDRs http handlers may reach despite the SSRF guard. */
  allowHosts: string[];
}

/**
 * The services that move jobs through their lives: the claim pump (push delivery), the lease
 * and deadline reaper, and the TrueFoundry run watcher. They share one outage backoff, so
 * they pause and resume together while the database is away, and one handler registry, which
 * `close` releases once they have stopped.
 */
export function createDispatchServices(
  ctx: AppContext,
  options: DispatchOptions,
  log: FastifyBaseLogger,
): { services: BackgroundService[]; close: () => Promise<void> } {
  const backoff = new OutageBackoff(log);
  const handlers = createHandlerRegistry(options);
  return {
    services: [
      new ClaimPump(ctx, handlers, options, backoff, log),
      new ReaperService(ctx, options.reapMs, backoff),
      new RunWatcher(ctx, handlers, options.watchMs, backoff, log),
    ],
    close: () => handlers.close(),
  };
}
