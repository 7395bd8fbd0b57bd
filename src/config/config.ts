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
  publicUrl: string | undefined;
  logLevel: string;
  bodyLimitBytes: number;
  jwt: JwtConfig;
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
  return {
    host: optional(env, 'PIE_HOST') ?? '127.0.0.1',
    port: integer(env, 'PIE_PORT', 8080, 0, 65535),
    dataDir: path.resolve(optional(env, 'PIE_DATA_DIR') ?? '.pie'),
    databaseUrl: optional(env, 'DATABASE_URL'),
    publicUrl: publicUrl?.replace(/\/+$/, ''),
    logLevel: optional(env, 'PIE_LOG_LEVEL') ?? 'info',
    bodyLimitBytes: integer(env, 'PIE_BODY_LIMIT_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
    jwt: {
      secret,
      jwksUrl,
      publicKeyPem: optional(env, 'PIE_JWT_PUBLIC_KEY')?.replace(/\\n/g, '\n'),
      issuer: optional(env, 'PIE_JWT_ISSUER') ?? 'pie',
      audience: optional(env, 'PIE_JWT_AUDIENCE') ?? 'pie',
      algorithms: (optional(env, 'PIE_JWT_ALGORITHMS') ?? '')
        .split(',')
        .map((a) => a.trim())
        .filter((a) => a !== ''),
    },
  };
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
