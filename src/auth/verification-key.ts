import type { Config } from '../config/config.js';
import { loadOrCreateJwtSecret } from './jwt-secret.js';
import type { RemoteKeySetOptions } from './remote-key-set.js';
import type { VerificationKey } from './token-verifier.js';

/** The key callers' tokens are checked against: JWKS, a public key, or the HS256 secret. */
export function verificationKey(config: Config): VerificationKey {
  const { jwksUrl, jwksCooldownS, jwksCacheMaxAgeS } = config.jwt;
  if (jwksUrl !== undefined) {
    const options: Partial<RemoteKeySetOptions> = {};
    if (jwksCooldownS !== undefined) options.cooldownMs = jwksCooldownS * 1000;
    if (jwksCacheMaxAgeS !== undefined) options.maxAgeMs = jwksCacheMaxAgeS * 1000;
    return { kind: 'jwks', url: jwksUrl, options };
  }
  if (config.jwt.publicKeyPem !== undefined)
    return { kind: 'public-key', pem: config.jwt.publicKeyPem };
  return { kind: 'secret', secret: loadOrCreateJwtSecret(config) };
}
