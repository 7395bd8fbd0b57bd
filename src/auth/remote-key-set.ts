import * as jose from 'jose';

export interface RemoteKeySetOptions {
  /** The least time between fetches caused by a token whose `kid` is not in the set. */
  cooldownMs: number;
  /** How long a fetched set is used before it is fetched again (when the endpoint answers). */
  maxAgeMs: number;
  /** How long one fetch may take. */
  timeoutMs: number;
}

export const JWKS_DEFAULTS: RemoteKeySetOptions = {
  cooldownMs: 30_000,
  maxAgeMs: 600_000,
  timeoutMs: 5_000,
};

/**
 * A JWKS fetched from the identity provider, as a jose key resolver. Unlike jose's own
 * `createRemoteJWKSet`, it keeps the last good set when the endpoint fails, and it counts the
 * cooldown from the last attempt rather than the last success, so that:
 *
 * - a new `kid` is picked up without a restart, by one fetch, at most one per cooldown;
 * - a flood of unknown `kid`s makes at most one fetch per cooldown (concurrent ones share it);
 * - a key removed from the set stops verifying new tokens once the set is older than its max
 *   age and has been fetched again;
 * - while the endpoint is down, keys already fetched keep working (and it is retried at most
 *   once per cooldown), rather than every caller being locked out when the set ages.
 */
export function remoteKeySet(
  url: URL,
  options: RemoteKeySetOptions = JWKS_DEFAULTS,
): jose.JWTVerifyGetKey {
  let local: ReturnType<typeof jose.createLocalJWKSet> | undefined;
  let fetchedAt = -Infinity;
  let attemptedAt = -Infinity;
  let pending: Promise<void> | undefined;

  const fetchSet = async () => {
    const response = await fetch(url, {
      redirect: 'manual',
      headers: { accept: 'application/json, application/jwk-set+json' },
      signal: AbortSignal.timeout(options.timeoutMs),
    });
    if (response.status !== 200) {
      throw new jose.errors.JOSEError(`JWKS endpoint answered ${response.status}`);
    }
    // createLocalJWKSet checks the shape (JWKSInvalid otherwise).
    local = jose.createLocalJWKSet((await response.json()) as jose.JSONWebKeySet);
    fetchedAt = Date.now();
  };

  /** Fetches once for all concurrent callers; a failure keeps the set already held. */
  const refresh = async () => {
    if (pending === undefined) {
      attemptedAt = Date.now();
      pending = fetchSet().finally(() => {
        pending = undefined;
      });
    }
    try {
      await pending;
    } catch (error) {
      if (local === undefined) throw error;
    }
  };

  const since = (time: number) => Date.now() - time;
  // Never more than one fetch per cooldown, whatever the callers send.
  const cooled = () => since(attemptedAt) >= options.cooldownMs;

  return async (header, token) => {
    const aged = local === undefined || since(fetchedAt) >= options.maxAgeMs;
    // With a set in hand, an aged one is still used while its replacement is on the way.
    if ((local === undefined && pending !== undefined) || (aged && cooled())) await refresh();
    if (local === undefined) throw new jose.errors.JOSEError('JWKS endpoint is not available');
    try {
      return await local(header, token);
    } catch (error) {
      // An unknown kid may be a new key: look again (or join a fetch under way), unless the
      // set was fetched within the cooldown.
      if (!(error instanceof jose.errors.JWKSNoMatchingKey)) throw error;
      if (pending === undefined && !cooled()) throw error;
      await refresh();
      return local(header, token);
    }
  };
}
