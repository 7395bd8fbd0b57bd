import { context, propagation, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  ConsoleSpanExporter,
  SimpleSpanProcessor,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { markTracing } from './tracing.js';

/**
 * The OpenTelemetry SDK, started only when tracing is asked for (see `tracingConfig` in
 * config/config.ts). `NodeTracerProvider` rather than `@opentelemetry/sdk-node`: PIE exports
 * traces only, and sdk-node would bring metrics, logs, gRPC and Zipkin exporters it never
 * starts. The provider still reads the standard variables itself (OTEL_TRACES_SAMPLER and its
 * argument, span limits, OTEL_BSP_* for the batch processor), the OTLP exporter its endpoint,
 * headers and timeout, and the env detector OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES.
 */

export interface TracingSetup {
  /** Names from OTEL_TRACES_EXPORTER (config.tracing.exporters). */
  exporters?: readonly ('otlp' | 'console')[];
  /**
   * Exporters given directly, each behind a SimpleSpanProcessor so a span is exported as it
   * ends: the tests' in-memory exporter.
   */
  immediate?: readonly SpanExporter[];
}

export interface Tracing {
  /** Exports what is buffered, then stops tracing and unregisters the SDK. */
  shutdown(): Promise<void>;
}

export function startTracing(setup: TracingSetup): Tracing {
  const processors: SpanProcessor[] = [
    ...(setup.exporters ?? []).map((name) => new BatchSpanProcessor(exporterNamed(name))),
    ...(setup.immediate ?? []).map((exporter) => new SimpleSpanProcessor(exporter)),
  ];
  const resource = resourceFromAttributes({ [ATTR_SERVICE_NAME]: 'pie' }).merge(
    detectResources({ detectors: [envDetector] }),
  );
  const provider = new NodeTracerProvider({ resource, spanProcessors: processors });
  // The AsyncLocalStorage context manager and the W3C trace-context propagator.
  provider.register();
  markTracing(true);
  return {
    async shutdown() {
      markTracing(false);
      await provider.shutdown();
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}

function exporterNamed(name: 'otlp' | 'console'): SpanExporter {
  return name === 'otlp' ? new OTLPTraceExporter() : new ConsoleSpanExporter();
}
