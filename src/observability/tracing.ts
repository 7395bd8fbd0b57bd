import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type SpanContext,
} from '@opentelemetry/api';

/**
 * PIE's spans, through the OpenTelemetry API only. The SDK (tracing-sdk.ts) is started by
 * `pie serve` when the OTEL_* variables ask for it, and marks tracing on here. Until then every
 * helper returns at its first line: no span objects, no context lookups, no `traceparent`
 * strings, so tracing off costs a boolean test per call site.
 *
 * Trace context crosses processes and time as a W3C `traceparent` string: stored with a job
 * (its `traceparent` column), put in the envelope and on webhook requests, read back from a
 * completion request's header.
 */

let enabled = false;

/** Called by the SDK's start and stop; nothing else turns tracing on. */
export function markTracing(on: boolean): void {
  enabled = on;
}

export function tracingOn(): boolean {
  return enabled;
}

const TRACER = 'pie';

export { SpanKind, SpanStatusCode, type Span };

/** The `traceparent` of the active span; null when tracing is off or no span is active. */
export function currentTraceparent(): string | null {
  if (!enabled) return null;
  return traceparentOf(context.active());
}

function traceparentOf(ctx: Context): string | null {
  if (trace.getSpanContext(ctx) === undefined) return null;
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier['traceparent'] ?? null;
}

/** The context a stored or received `traceparent` names; the root context when it names none. */
export function contextFromTraceparent(traceparent: string | null | undefined): Context {
  if (traceparent === null || traceparent === undefined) return ROOT_CONTEXT;
  return propagation.extract(ROOT_CONTEXT, { traceparent });
}

/** The span context a `traceparent` names, for a link; undefined when it is not valid. */
export function spanContextOf(traceparent: string | null | undefined): SpanContext | undefined {
  if (traceparent === null || traceparent === undefined) return undefined;
  return trace.getSpanContext(contextFromTraceparent(traceparent));
}

export interface SpanOptions {
  kind?: SpanKind;
  /** A function is called only when tracing is on, so tracing off builds no attributes. */
  attributes?: Attributes | (() => Attributes);
  /**
   * The parent: a stored `traceparent` (a job's trace continued later), or, when absent, the
   * active span. `null` starts a new trace.
   */
  parent?: string | null;
  links?: Link[];
}

/**
 * Runs `work` inside a new span, which ends when `work` settles; a throw marks the span as an
 * error and is rethrown. With tracing off, runs `work` with no span at all.
 */
export function withSpan<T>(
  name: string,
  options: SpanOptions,
  work: (span: Span | undefined) => Promise<T>,
): Promise<T> {
  if (!enabled) return work(undefined);
  const parent =
    options.parent === undefined ? context.active() : contextFromTraceparent(options.parent);
  const attributes =
    typeof options.attributes === 'function' ? options.attributes() : options.attributes;
  const span = trace.getTracer(TRACER).startSpan(
    name,
    {
      kind: options.kind ?? SpanKind.INTERNAL,
      ...(attributes === undefined ? {} : { attributes }),
      ...(options.links === undefined ? {} : { links: options.links }),
    },
    parent,
  );
  return context.with(trace.setSpan(parent, span), async () => {
    try {
      return await work(span);
    } catch (error) {
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw error;
    } finally {
      span.end();
    }
  });
}

/**
 * Starts a span that the caller ends, for work whose start and end are not one call (an HTTP
 * request between two hooks); undefined with tracing off. `parent`: a received `traceparent`,
 * or none for a new trace.
 */
export function startSpan(
  name: string,
  options: { kind: SpanKind; attributes?: Attributes; parent: string | null | undefined },
): { span: Span; context: Context } | undefined {
  if (!enabled) return undefined;
  const parent = contextFromTraceparent(options.parent);
  const span = trace
    .getTracer(TRACER)
    .startSpan(
      name,
      { kind: options.kind, ...(options.attributes ? { attributes: options.attributes } : {}) },
      parent,
    );
  return { span, context: trace.setSpan(parent, span) };
}

/** Runs `work` with `ctx` active, so that spans started inside it are its children. */
export function runInContext<T>(ctx: Context, work: () => T): T {
  return context.with(ctx, work);
}

/** The trace id of the active span, or undefined (tracing off, no span). */
export function activeTraceId(): string | undefined {
  if (!enabled) return undefined;
  return trace.getActiveSpan()?.spanContext().traceId;
}

/**
 * Links the active span to the trace a stored `traceparent` names, when that is another trace
 * (a completion sent without the traceparent its delivery carried): the job's trace and the
 * completion's can then be found from each other.
 */
export function linkToTrace(traceparent: string | null): void {
  if (!enabled || traceparent === null) return;
  const span = trace.getActiveSpan();
  const target = spanContextOf(traceparent);
  if (span === undefined || target === undefined) return;
  if (span.spanContext().traceId !== target.traceId) span.addLink({ context: target });
}
