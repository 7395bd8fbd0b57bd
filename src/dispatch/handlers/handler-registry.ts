import type { DeliveryOutcome, Envelope } from '../../domain/delivery.js';
import type { Handler, HandlerType } from '../../domain/handlers.js';
import { jobAttributes } from '../../observability/job-spans.js';
import {
  currentTraceparent,
  SpanKind,
  SpanStatusCode,
  withSpan,
  type Span,
} from '../../observability/tracing.js';
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
      withSpan(
        `pie.deliver ${handler.type}`,
        {
          kind: handler.type === 'command' ? SpanKind.INTERNAL : SpanKind.CLIENT,
          attributes: () => deliveryAttributes(envelope, handler),
        },
        async (span) => {
          if (span === undefined)
            return adapterOf(adapters, handler).deliver(envelope, handler, ctx);
          // The handler continues the trace from this delivery (the envelope's traceparent,
          // and the http kind's traceparent header, which it copies).
          const traced = { ...envelope, traceparent: currentTraceparent() ?? undefined };
          const outcome = await adapterOf(adapters, handler).deliver(traced, handler, ctx);
          noteOutcome(span, outcome);
          return outcome;
        },
      ),
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

function deliveryAttributes(envelope: Envelope, handler: Handler) {
  return { ...jobAttributes({ ...envelope, handler }), ...handlerTarget(handler) };
}

/**
 * Where the delivery went: a host, or a command's program. Not the whole url, whose path or
 * query may hold a credential, nor a command's arguments.
 */
function handlerTarget(handler: Handler): Record<string, string> {
  switch (handler.type) {
    case 'http':
      return hostOf(handler.url);
    case 'truefoundry':
      return hostOf(handler.base_url);
    case 'command':
      return { 'process.executable.name': handler.command };
    case 'worker':
      return {};
  }
}

function hostOf(url: string): Record<string, string> {
  try {
    return { 'server.address': new URL(url).hostname };
  } catch {
    return {};
  }
}

/** The outcome on the delivery's span; a retry or a failure is an error of this delivery. */
function noteOutcome(span: Span, outcome: DeliveryOutcome): void {
  span.setAttribute('pie.delivery.outcome', outcome.kind);
  if (outcome.kind === 'retry' || outcome.kind === 'fail') {
    span.setAttribute('error.type', outcome.error.code);
    span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.error.message });
  } else if (outcome.kind === 'finished' && outcome.status === 'failure') {
    span.setAttribute('error.type', outcome.error?.code ?? 'failure');
  }
}
