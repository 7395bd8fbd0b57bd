import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, tracingConfig } from '../../src/config/config.js';

describe('tracing settings (OTEL_*)', () => {
  it('is off with no OTEL_* variables, or when they say none or disabled', () => {
    assert.equal(tracingConfig({}), undefined);
    assert.equal(tracingConfig({ OTEL_SERVICE_NAME: 'pie-eu' }), undefined);
    assert.equal(tracingConfig({ OTEL_TRACES_EXPORTER: 'none' }), undefined);
    assert.equal(
      tracingConfig({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }),
      undefined,
    );
    assert.equal(
      tracingConfig({ OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }),
      undefined,
    );
  });

  it('exports over OTLP when an endpoint is set, or the exporters OTEL_TRACES_EXPORTER names', () => {
    assert.deepEqual(tracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318' }), {
      exporters: ['otlp'],
    });
    assert.deepEqual(
      tracingConfig({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' }),
      {
        exporters: ['otlp'],
      },
    );
    assert.deepEqual(tracingConfig({ OTEL_TRACES_EXPORTER: 'otlp' }), { exporters: ['otlp'] });
    assert.deepEqual(tracingConfig({ OTEL_TRACES_EXPORTER: 'Console, otlp,console' }), {
      exporters: ['console', 'otlp'],
    });
  });

  it('refuses exporters and OTLP protocols PIE does not have', () => {
    assert.throws(() => tracingConfig({ OTEL_TRACES_EXPORTER: 'zipkin' }), ConfigError);
    assert.throws(
      () =>
        tracingConfig({
          OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4317',
          OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        }),
      /http\/protobuf only; OTEL_EXPORTER_OTLP_PROTOCOL is "grpc"/,
    );
    // The traces-specific protocol wins over the general one.
    assert.deepEqual(
      tracingConfig({
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf',
      }),
      { exporters: ['otlp'] },
    );
    // A console exporter needs no protocol.
    assert.deepEqual(
      tracingConfig({ OTEL_TRACES_EXPORTER: 'console', OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }),
      { exporters: ['console'] },
    );
  });
});
