import type { HandlerType } from '../../domain/handlers.js';
import { createConcurrencyLimit } from '../../limits/concurrency-limit.js';
import { createAddressGuard } from './address-guard.js';
import { createCommandAdapter } from './command.handler.js';
import type {
  HandlerAdapter,
  HandlerAdapters,
  HandlerOf,
  HandlerRegistry,
} from './handler-adapter.js';
import { createHttpAdapter } from './http.handler.js';
import { createTrueFoundryAdapter } from './truefoundry/adapter.js';
import { createWorkerAdapter } from './worker.handler.js';

export interface HandlerRegistryOptions {
  /** How long an http handler, or TrueFoundry's control plane, has to answer a request. */
  httpTimeoutMs: number;
  /** Hosts, IPs or CIDRs http handlers may reach despite the address guard. */
  allowHosts: string[];
  /** Local command processes at once. */
  commandConcurrency: number;
  /** Whether this process runs `command` handlers at all (claims them). */
  commandHandlers: boolean;
}

/**
 * One adapter per handler kind, keyed by the handler's type. http and TrueFoundry requests go
 * through one address guard (which refuses private and loopback addresses not allowed), and
 * command processes run under one concurrency limit.
 */
export function createHandlerRegistry(options: HandlerRegistryOptions): HandlerRegistry {
  const guard = createAddressGuard(options.allowHosts);
  const commands = createConcurrencyLimit(options.commandConcurrency);
  const adapters: HandlerAdapters = {
    http: createHttpAdapter({ timeoutMs: options.httpTimeoutMs, guard }),
    command: createCommandAdapter(commands),
    truefoundry: createTrueFoundryAdapter({
      timeoutMs: options.httpTimeoutMs,
      dispatcher: guard.dispatcher,
    }),
    worker: createWorkerAdapter(),
  };
  const pushTypes: readonly HandlerType[] = options.commandHandlers
    ? ['http', 'command', 'truefoundry']
    : ['http', 'truefoundry'];

  const cancelTypes = Object.values(adapters)
    .filter((adapter) => adapter.cancel !== undefined)
    .map((adapter) => adapter.type);

  return {
    pushTypes,
    cancelTypes,
    deliver: (envelope, handler, ctx) =>
      adapterOf(adapters, handler).deliver(envelope, handler, ctx),
    follow: async (handler, reference, signal) =>
      adapterOf(adapters, handler).follow?.(handler, reference, signal),
    cancel: async (handler, notice, signal) =>
      adapterOf(adapters, handler).cancel?.(handler, notice, signal),
    close: () => guard.close(),
  };
}

/** The adapter for `handler`'s kind, typed to take that handler. */
function adapterOf<T extends HandlerType>(
  adapters: HandlerAdapters,
  handler: HandlerOf<T>,
): HandlerAdapter<T> {
  return adapters[handler.type];
}
