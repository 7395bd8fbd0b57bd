import type { FastifyBaseLogger } from 'fastify';
import type { BackgroundService } from '../services/background-service.js';
import { BatchFinisherService } from '../services/batch-finisher.service.js';
import { OutageBackoff } from '../services/outage-backoff.js';
import { ReaperService } from '../services/reaper.service.js';
import type { AppContext } from '../usecases/context.js';
import { CancelRelay } from './cancel-relay.js';
import { ClaimPump } from './claim-pump.js';
import { createHandlerRegistry, type HandlerRegistryOptions } from './handlers/handler-registry.js';
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
 * and deadline reaper, the batch finisher, the TrueFoundry run watcher and the cancel relay. They share one outage
 * backoff, so they pause and resume together while the database is away, and one handler
 * registry, which `close` releases once they have stopped.
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
      new BatchFinisherService(ctx, options.reapMs, backoff, log),
      new RunWatcher(ctx, handlers, options.watchMs, backoff, log),
      new CancelRelay(ctx, handlers, relayOptions(options), log),
    ],
    close: () => handlers.close(),
  };
}

/**
 * The cancel relay alone, for a process that serves the API without dispatching
 * (PIE_DISPATCH=off): a cancel is relayed by the process that took it, so the cancels such a
 * process takes still reach the handlers.
 */
export function createCancelRelayService(
  ctx: AppContext,
  options: HandlerRegistryOptions,
  log: FastifyBaseLogger,
): { services: BackgroundService[]; close: () => Promise<void> } {
  const handlers = createHandlerRegistry(options);
  return {
    services: [new CancelRelay(ctx, handlers, relayOptions(options), log)],
    close: () => handlers.close(),
  };
}

/** A notice is small and best effort: a few seconds at most, even if deliveries get longer. */
function relayOptions(options: HandlerRegistryOptions) {
  return { concurrency: 16, timeoutMs: Math.min(options.httpTimeoutMs, 5000) };
}
