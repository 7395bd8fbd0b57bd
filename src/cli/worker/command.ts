import fs from 'node:fs';
import path from 'node:path';
import { loadOrCreateJwtSecret, usesSharedSecret } from '../../auth/jwt-secret.js';
import { issueToken } from '../../auth/token-issuer.js';
import { ConfigError, type Config } from '../../config/config.js';
import { nonEmpty, parseWorkerArgs, type WorkerOptions } from './args.js';
import { runWorker, type TokenSource } from './claim-loop.js';
import { log } from './log.js';

/**
 * `pie worker`: the reference pull worker. It claims jobs of one model version, runs a local
 * command per job exactly as the `command` handler does, keeps each job's lease alive with
 * heartbeats, and posts the result to the job's callback.
 */

/** `pie worker ...`: parses, finds a token, runs until SIGINT/SIGTERM (or one round). */
export async function workerCommand(config: Config, argv: string[]): Promise<number> {
  const options = parseWorkerArgs(argv, process.env, config);
  const token = workerToken(config, options);
  const stop = new AbortController();
  const force = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (!stop.signal.aborted) {
      log(`${signal}: no new claims; waiting for running jobs (again to stop them)`);
      stop.abort();
    } else {
      log(`${signal}: stopping running jobs; PIE retries them when their lease expires`);
      force.abort();
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await runWorker(options, token, { stop: stop.signal, force: force.signal });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/**
 * The bearer token for claims: PIE_TOKEN when set, else one minted here with the server's
 * shared JWT secret (configured, or the one in the data directory) and renewed before it expires.
 */
function workerToken(config: Config, options: WorkerOptions): TokenSource {
  const given = nonEmpty(process.env['PIE_TOKEN']);
  if (given !== undefined) return () => Promise.resolve(given);
  // Only a secret the server can know: creating a fresh one here would mint useless tokens.
  const secretKnown =
    usesSharedSecret(config) &&
    (config.jwt.secret !== undefined || fs.existsSync(path.join(config.dataDir, 'jwt-secret')));
  if (!secretKnown) {
    throw new ConfigError(
      `set PIE_TOKEN to a token with scope jobs:complete for model ${options.model} ` +
        `(npx pie token --scope jobs:complete --model ${options.model} --ttl 12h)`,
    );
  }
  const secret = loadOrCreateJwtSecret(config);
  const renewAfterMs = 11 * 3600_000;
  let current: { token: Promise<string>; mintedAt: number } | undefined;
  return () => {
    if (current === undefined || Date.now() - current.mintedAt > renewAfterMs) {
      const token = issueToken(secret, config.jwt, {
        subject: `worker:${options.workerId}`,
        scopes: ['jobs:complete'],
        models: [options.model],
        ttl: '12h',
      });
      current = { token, mintedAt: Date.now() };
    }
    return current.token;
  };
}
