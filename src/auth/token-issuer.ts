import * as jose from 'jose';
import type { JwtConfig } from '../config/config.js';
import type { Grant, Scope } from './caller.js';

export interface TokenRequest {
  subject: string;
  scopes: readonly Scope[];
  clients?: Grant;
  models?: Grant;
  /** A jose time span such as `1h`, `30m` or `7d`. */
  ttl: string;
}

/** Mints an HS256 token the embedded default's verifier accepts (`pie token`, tests). */
export function issueToken(secret: Uint8Array, config: JwtConfig, request: TokenRequest) {
  const claims: jose.JWTPayload = { scope: request.scopes.join(' ') };
  if (request.clients !== undefined && request.clients !== '*') claims['clients'] = request.clients;
  if (request.models !== undefined && request.models !== '*') claims['models'] = request.models;
  return new jose.SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(request.subject)
    .setIssuer(config.issuer)
    .setAudience(config.audience)
    .setIssuedAt()
    .setExpirationTime(request.ttl)
    .sign(secret);
}
