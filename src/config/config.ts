import path from 'node:path';

/**
 * Everything PIE reads from the environment, parsed once at boot into a typed object.
 * A bad value stops the process with a message naming the variable, rather than
 * surfacing later as a confusing runtime fault.
 */
export interface Config {
  host: string;
  port: number;
  dataDir: string;
  /** Unset means the embedded PGlite database inside `dataDir`. */
  databaseUrl: string | undefined;
  /** A replica that lists read from (DATABASE_READ_URL); unset: they read from `databaseUrl`. */
  databaseReadUrl: string | undefined;
  publicUrl: string | undefined;
  logLevel: string;
  bodyLimitBytes: number;
  limits: LimitsConfig;
  jwt: JwtConfig;
  dispatch: DispatchConfig;
  /** How long SIGTERM waits for deliveries in flight before releasing their jobs. */
  shutdownGraceS: number;
  /** Seconds between PIE's own vacuums where no autovacuum runs (see db/vacuum.ts); 0 = never. */
  vacuumS: number;
  /** Finished jobs are deleted this many days after they finished; 0 keeps them all. */
  retentionDays: number;
  /** Seconds between retention's turns (deleting old finished jobs and idempotency records). */
  retentionIntervalS: number;
  /** The job event stream (GET .../events): see docs/API-CONTRACT.md. */
  events: EventsConfig;
  /** Milliseconds between the scheduler's looks for due schedule ticks; 0: this process fires none. */
  schedulePollMs: number;
  /** Where spans go; undefined: tracing is off (no SDK is started). */
  tracing: TracingConfig | undefined;
}

/**
 * Which span exporters `pie serve` starts. Everything else about them (endpoint, headers,
 * service name, sampler) the OpenTelemetry SDK reads from its own OTEL_* variables.
 */
export interface TracingConfig {
  exporters: TraceExporterName[];
}

export type TraceExporterName = 'otlp' | 'console';

/** What one client may ask of this process (beyond it, a 429 with Retry-After), and how deep a body may nest. */
export interface EventsConfig {
  /** How long job events are kept: how far back a Last-Event-ID can resume (PIE_EVENTS_RETENTION_S). */
  retentionS: number;
  /** Seconds between `: keep-alive` comments on an idle stream (PIE_EVENTS_HEARTBEAT_S). */
  heartbeatS: number;
  /** Bytes a stream may have unsent before its consumer is cut off (PIE_EVENTS_MAX_BUFFER_BYTES). */
  maxBufferBytes: number;
  /** How often each process numbers and reads events it was not told of (PIE_EVENTS_POLL_MS). */
  pollMs: number;
}

export interface LimitsConfig {
  /** Requests per second per client, a token bucket per process; 0 turns the limit off. */
  rateLimitRps: number;
  /** Requests a client may make at once after being idle (the bucket's size). */
  rateLimitBurst: number;
  /** Queued, dispatched and running jobs a client may have before new ones get 429; 0 = off. */
  quotaOpenJobs: number;
  /** Bodies nested deeper than this (objects and arrays) are a 400. */
  maxJsonDepth: number;
}

export interface DispatchConfig {
  /** Whether this process dispatches at all (PIE_DISPATCH=off serves the API only). */
  enabled: boolean;
  concurrency: number;
  /** Whether `command` handlers run; on by default only for the embedded single-user setup. */
  commandHandlers: boolean;
  commandConcurrency: number;
  leaseS: number;
  httpTimeoutMs: number;
  /** Hosts, IPs or CIDRs http handlers may reach although private (the SSRF guard). */
  allowHosts: string[];
}

export interface JwtConfig {
  /** HS256 secret given explicitly; otherwise one is created in the data folder. */
  secret: string | undefined;
  jwksUrl: string | undefined;
  publicKeyPem: string | undefined;
  issuer: string;
  audience: string;
  /** Allow-list; empty means "derive from the key kind" (HS256, or RS256/ES256). */
  algorithms: string[];
  /** JWKS: least seconds between refetches for unknown kids, and seconds a fetched set is used. */
  jwksCooldownS?: number;
  jwksCacheMaxAgeS?: number;
}

export class ConfigError extends Error {}

type Env = Record<string, string | undefined>;

export function loadConfig(env: Env = process.env): Config {
  const jwksUrl = optional(env, 'PIE_JWKS_URL');
  if (jwksUrl !== undefined) parseUrl('PIE_JWKS_URL', jwksUrl);
  const publicUrl = optional(env, 'PIE_PUBLIC_URL');
  if (publicUrl !== undefined) parseUrl('PIE_PUBLIC_URL', publicUrl);
  const secret = optional(env, 'PIE_JWT_SECRET');
  if (secret !== undefined && secret.length < 32) {
    throw new ConfigError('PIE_JWT_SECRET must be at least 32 characters long');
  }
  const databaseUrl = optional(env, 'DATABASE_URL');
  const databaseReadUrl = optional(env, 'DATABASE_READ_URL');
  if (databaseReadUrl !== undefined && databaseUrl === undefined) {
    throw new ConfigError(
      'DATABASE_READ_URL needs DATABASE_URL: the embedded database has no replicas',
    );
  }
  const rateLimitRps = integer(env, 'PIE_RATE_LIMIT_RPS', 1000, 0, 1_000_000);
  return {
    host: optional(env, 'PIE_HOST') ?? '127.0.0.1',
    port: integer(env, 'PIE_PORT', 8080, 0, 65535),
    dataDir: path.resolve(optional(env, 'PIE_DATA_DIR') ?? '.pie'),
    databaseUrl,
    databaseReadUrl,
    publicUrl: publicUrl?.replace(/\/+$/, ''),
    logLevel: optional(env, 'PIE_LOG_LEVEL') ?? 'info',
    bodyLimitBytes: integer(env, 'PIE_BODY_LIMIT_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
    limits: {
      rateLimitRps,
      rateLimitBurst: integer(
        env,
        'PIE_RATE_LIMIT_BURST',
        Math.max(1, 2 * rateLimitRps),
        1,
        2_000_000,
      ),
      quotaOpenJobs: integer(env, 'PIE_QUOTA_OPEN_JOBS', 100_000, 0, 1_000_000_000),
      maxJsonDepth: integer(env, 'PIE_MAX_JSON_DEPTH', 32, 1, 1000),
    },
    jwt: {
      secret,
      jwksUrl,
      publicKeyPem: optional(env, 'PIE_JWT_PUBLIC_KEY')?.replace(/\\n/g, '\n'),
      issuer: optional(env, 'PIE_JWT_ISSUER') ?? 'pie',
      audience: optional(env, 'PIE_JWT_AUDIENCE') ?? 'pie',
      algorithms: list(env, 'PIE_JWT_ALGORITHMS'),
      jwksCooldownS: integer(env, 'PIE_JWKS_COOLDOWN_S', 30, 1, 3600),
      jwksCacheMaxAgeS: integer(env, 'PIE_JWKS_CACHE_MAX_AGE_S', 600, 1, 86_400),
    },
    dispatch: {
      enabled: flag(env, 'PIE_DISPATCH', true),
      concurrency: integer(env, 'PIE_DISPATCH_CONCURRENCY', 64, 1, 10_000),
      commandHandlers: flag(env, 'PIE_COMMAND_HANDLERS', databaseUrl === undefined),
      commandConcurrency: integer(env, 'PIE_COMMAND_CONCURRENCY', 4, 1, 1000),
      leaseS: integer(env, 'PIE_LEASE_S', 60, 5, 3600),
      httpTimeoutMs: integer(env, 'PIE_HTTP_TIMEOUT_MS', 30_000, 100, 600_000),
      allowHosts: list(env, 'PIE_HTTP_ALLOW_HOSTS'),
    },
    shutdownGraceS: integer(env, 'PIE_SHUTDOWN_GRACE_S', 25, 0, 3600),
    vacuumS: integer(env, 'PIE_VACUUM_S', 10, 0, 86_400),
    retentionDays: integer(env, 'PIE_RETENTION_DAYS', 30, 0, 36_500),
    retentionIntervalS: integer(env, 'PIE_RETENTION_INTERVAL_S', 60, 1, 86_400),
    events: {
      retentionS: integer(env, 'PIE_EVENTS_RETENTION_S', 3600, 60, 30 * 86_400),
      heartbeatS: integer(env, 'PIE_EVENTS_HEARTBEAT_S', 15, 1, 3600),
      maxBufferBytes: integer(env, 'PIE_EVENTS_MAX_BUFFER_BYTES', 1024 * 1024, 16 * 1024, 1 << 30),
      pollMs: integer(env, 'PIE_EVENTS_POLL_MS', 500, 10, 60_000),
    },
    schedulePollMs: integer(env, 'PIE_SCHEDULE_POLL_MS', 250, 0, 60_000),
    tracing: tracingConfig(env),
  };
}

/**
 * Tracing is on when OTEL_TRACES_EXPORTER names exporters, or, without it, when an OTLP
 * endpoint is set (OTLP is then the exporter, as the specification's default); off with
 * OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none. PIE speaks OTLP over http/protobuf
 * only, so asking for another protocol is an error rather than silence.
 */
export function tracingConfig(env: Env): TracingConfig | undefined {
  if (optional(env, 'OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return undefined;
  const named = list(env, 'OTEL_TRACES_EXPORTER').map((name) => name.toLowerCase());
  const endpoint =
    optional(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') ??
    optional(env, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  const exporters = named.length > 0 ? named : endpoint === undefined ? [] : ['otlp'];
  if (exporters.length === 0 || exporters.includes('none')) return undefined;
  const unknown = exporters.filter((name) => name !== 'otlp' && name !== 'console');
  if (unknown.length > 0) {
    throw new ConfigError(
      `OTEL_TRACES_EXPORTER may name otlp, console or none, got "${unknown.join(', ')}"`,
    );
  }
  if (exporters.includes('otlp')) {
    // The traces-specific variable wins over the general one, as in the SDK.
    const name = ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_PROTOCOL'].find(
      (candidate) => optional(env, candidate) !== undefined,
    );
    const protocol = name === undefined ? undefined : optional(env, name);
    if (protocol !== undefined && protocol !== 'http/protobuf') {
      throw new ConfigError(`PIE exports traces over http/protobuf only; ${name} is "${protocol}"`);
    }
  }
  return { exporters: [...new Set(exporters)] as TraceExporterName[] };
}

function flag(env: Env, name: string, fallback: boolean): boolean {
  const raw = optional(env, name)?.toLowerCase();
  if (raw === undefined) return fallback;
  if (['1', 'true', 'on', 'yes'].includes(raw)) return true;
  if (['0', 'false', 'off', 'no'].includes(raw)) return false;
  throw new ConfigError(`${name} must be on or off, got "${raw}"`);
}

function list(env: Env, name: string): string[] {
  return (optional(env, name) ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function optional(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = optional(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

function parseUrl(name: string, raw: string): URL {
  try {
    return new URL(raw);
  } catch {
    throw new ConfigError(`${name} must be an absolute URL, got "${raw}"`);
  }
}
