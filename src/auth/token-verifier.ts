import crypto from 'node:crypto';
import * as jose from 'jose';
import type { JwtConfig } from '../config/config.js';
import type { Caller, Grant, Scope } from './caller.js';
import { isScope } from './caller.js';
import { JWKS_DEFAULTS, remoteKeySet, type RemoteKeySetOptions } from './remote-key-set.js';

export interface TokenVerifier {
  /** Resolves the caller, or rejects with a TokenError saying why the token is refused. */
  verify(token: string): Promise<Caller>;
  /** The caller of a token that verified before and has not expired; no other work. */
  known(token: string): Caller | undefined;
}

export class TokenError extends Error {}

export type VerificationKey =
  | { kind: 'secret'; secret: Uint8Array }
  | { kind: 'public-key'; pem: string }
  | { kind: 'jwks'; url: string; options?: Partial<RemoteKeySetOptions> };

/**
 * Builds the verifier for the configured key. Only the allow-listed algorithms are accepted
 * (`alg: none` never is), and issuer, audience, `exp` and `sub` are required.
 */
export function createTokenVerifier(key: VerificationKey, config: JwtConfig): TokenVerifier {
  const { keyInput, algorithms } = resolveKey(key, config.algorithms);
  const options: jose.JWTVerifyOptions = {
    algorithms,
    issuer: config.issuer,
    audience: config.audience,
    requiredClaims: ['exp', 'sub'],
  };
  const verified = new VerifiedTokens();
  return {
    known: (token) => verified.get(token),
    async verify(token) {
      const known = verified.get(token);
      if (known !== undefined) return known;
      let payload: jose.JWTPayload;
      try {
        payload =
          typeof keyInput === 'function'
            ? (await jose.jwtVerify(token, keyInput, options)).payload
            : (await jose.jwtVerify(token, keyInput, options)).payload;
      } catch (error) {
        throw new TokenError(describeJoseError(error));
      }
      const caller = callerFromClaims(payload);
      verified.set(token, caller, payload);
      return caller;
    },
  };
}

/**
 * Callers whose token verified, kept until the token's `exp` (or its `nbf`-free life runs
 * out): a service called thousands of times a second with the same token need not check its
 * signature each time. The same token string always verifies the same way, so only time can
 * change the answer, and the expiry is checked on every hit.
 */
class VerifiedTokens {
  private readonly entries = new Map<string, { caller: Caller; expiresAt: number }>();
  private static readonly MAX = 10_000;

  get(token: string): Caller | undefined {
    const entry = this.entries.get(token);
    if (entry === undefined) return undefined;
    if (Date.now() >= entry.expiresAt) {
      this.entries.delete(token);
      return undefined;
    }
    return entry.caller;
  }

  set(token: string, caller: Caller, payload: jose.JWTPayload): void {
    if (typeof payload.exp !== 'number') return;
    // Keep the map bounded: the oldest entry goes first.
    if (this.entries.size >= VerifiedTokens.MAX) {
      const oldest = this.entries.keys().next();
      if (oldest.done !== true) this.entries.delete(oldest.value);
    }
    this.entries.set(token, { caller, expiresAt: payload.exp * 1000 });
  }
}

function resolveKey(
  key: VerificationKey,
  configured: string[],
): { keyInput: Uint8Array | crypto.KeyObject | jose.JWTVerifyGetKey; algorithms: string[] } {
  switch (key.kind) {
    case 'secret':
      // A KeyObject, imported once: given raw bytes, jose imports the key on every verify.
      return {
        keyInput: crypto.createSecretKey(key.secret),
        algorithms: allowList(configured, ['HS256']),
      };
    case 'public-key': {
      const keyObject = crypto.createPublicKey(key.pem);
      const natural = keyObject.asymmetricKeyType === 'ec' ? ['ES256'] : ['RS256'];
      return { keyInput: keyObject, algorithms: allowList(configured, natural) };
    }
    case 'jwks':
      // Cached; refetched for an unknown kid at most once per cooldown, and when aged.
      return {
        keyInput: remoteKeySet(new URL(key.url), { ...JWKS_DEFAULTS, ...key.options }),
        algorithms: allowList(configured, ['RS256', 'ES256']),
      };
  }
}

function allowList(configured: string[], fallback: string[]): string[] {
  return configured.length > 0 ? configured : fallback;
}

function callerFromClaims(payload: jose.JWTPayload): Caller {
  const subject = payload.sub;
  if (typeof subject !== 'string' || subject === '') {
    throw new TokenError('token has no subject (sub)');
  }
  const scope = payload['scope'];
  if (typeof scope !== 'string') throw new TokenError('token has no scope claim');
  const scopes = new Set<Scope>(scope.split(' ').filter(isScope));
  return {
    subject,
    scopes,
    clients: grantClaim(payload, 'clients'),
    models: grantClaim(payload, 'models'),
  };
}

function grantClaim(payload: jose.JWTPayload, name: 'clients' | 'models'): Grant {
  const value = payload[name];
  if (value === undefined || value === '*') return '*';
  if (Array.isArray(value) && value.every((item): item is string => typeof item === 'string')) {
    return value;
  }
  throw new TokenError(`token claim "${name}" must be a list of ids or "*"`);
}

function describeJoseError(error: unknown): string {
  if (error instanceof jose.errors.JWTExpired) return 'token has expired';
  if (error instanceof jose.errors.JWTClaimValidationFailed) {
    return `token claim "${error.claim}" is not acceptable (${error.reason})`;
  }
  if (error instanceof jose.errors.JOSEAlgNotAllowed) return 'token algorithm is not allowed';
  if (error instanceof jose.errors.JWSSignatureVerificationFailed) {
    return 'token signature is invalid';
  }
  if (error instanceof jose.errors.JWKSNoMatchingKey) return 'token key id (kid) is not known';
  if (error instanceof jose.errors.JWSInvalid || error instanceof jose.errors.JWTInvalid) {
    return 'token is malformed';
  }
  return 'token could not be verified';
}
