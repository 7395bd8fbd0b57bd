import type { Config } from '../config/config.js';
import { loadOrCreateJwtSecret } from './jwt-secret.js';
import type { VerificationKey } from './token-verifier.js';

/** The key callers' tokens are checked against: JWKS, a public key, or the HS256 secret. */
export function verificationKey(config: Config): VerificationKey {
  if (config.jwt.jwksUrl !== undefined) return { kind: 'jwks', url: config.jwt.jwksUrl };
  if (config.jwt.publicKeyPem !== undefined)
    return { kind: 'public-key', pem: config.jwt.publicKeyPem };
  return { kind: 'secret', secret: loadOrCreateJwtSecret(config) };
}
