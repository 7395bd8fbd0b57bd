import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/config.js';

/**
 * The HS256 secret: `PIE_JWT_SECRET` when set, otherwise a random one created on first start
 * and kept in the data folder, so `pie token` and `pie serve` agree without configuration.
 */
export function loadOrCreateJwtSecret(config: Config): Uint8Array {
  if (config.jwt.secret !== undefined) return new TextEncoder().encode(config.jwt.secret);
  const file = path.join(config.dataDir, 'jwt-secret');
  if (!fs.existsSync(file)) {
    fs.mkdirSync(config.dataDir, { recursive: true });
    try {
      // 'wx' fails if another process created it first; then we read theirs.
      fs.writeFileSync(file, crypto.randomBytes(32).toString('base64url'), {
        flag: 'wx',
        mode: 0o600,
      });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  return new TextEncoder().encode(fs.readFileSync(file, 'utf8').trim());
}

/** HS256 is used when no asymmetric verification key is configured. */
export function usesSharedSecret(config: Config): boolean {
  return config.jwt.jwksUrl === undefined && config.jwt.publicKeyPem === undefined;
}
