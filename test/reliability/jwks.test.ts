import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { verificationKey } from '../../src/auth/verification-key.js';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import {
  JwksServer,
  rsaSigningKey,
  signRs256,
  validClaims,
  type SigningKey,
} from '../helpers/jwks-server.js';
import { describeOnEachBackend, errorMessage, type TestServer } from '../helpers/test-server.js';
import { sleep } from '../helpers/wait.js';

/**
 * PIE verifying tokens against a real JWKS endpoint on loopback: key rotation without a
 * restart, removed keys refused once the set is fetched again, a flood of unknown kids that
 * does not flood the endpoint, and an endpoint outage that locks nobody out.
 */

const COOLDOWN_MS = 1000;
const MAX_AGE_MS = 3000;

async function status(server: TestServer, token: string) {
  const response = await server.get('/v2/clients', { token });
  if (response.status !== 200) errorMessage(response);
  return response;
}

describe('JWKS settings', () => {
  it('PIE_JWKS_COOLDOWN_S and PIE_JWKS_CACHE_MAX_AGE_S reach the key set, with defaults', () => {
    const url = 'https://idp.example/.well-known/jwks.json';
    assert.deepEqual(verificationKey(loadConfig({ PIE_JWKS_URL: url })), {
      kind: 'jwks',
      url,
      options: { cooldownMs: 30_000, maxAgeMs: 600_000 },
    });
    const tuned = loadConfig({
      PIE_JWKS_URL: url,
      PIE_JWKS_COOLDOWN_S: '5',
      PIE_JWKS_CACHE_MAX_AGE_S: '60',
    });
    assert.deepEqual(verificationKey(tuned), {
      kind: 'jwks',
      url,
      options: { cooldownMs: 5000, maxAgeMs: 60_000 },
    });
    assert.throws(() => loadConfig({ PIE_JWKS_COOLDOWN_S: '0' }), ConfigError);
    assert.throws(() => loadConfig({ PIE_JWKS_CACHE_MAX_AGE_S: '0' }), ConfigError);
  });
});

// Short windows so the test sees rotation and ageing within seconds.
let jwks: JwksServer;
let k1: SigningKey;
let k2: SigningKey;
let k3: SigningKey;
before(async () => {
  [k1, k2, k3] = await Promise.all([rsaSigningKey('k1'), rsaSigningKey('k2'), rsaSigningKey('k3')]);
});

describeOnEachBackend(
  'JWKS rotation and outage (cooldown 1 s, max age 3 s)',
  (server) => {
    after(() => jwks.close());

    it('accepts a k1 token after one fetch of the set, and fetches no more for it', async () => {
      const before = jwks.fetches;
      assert.equal((await status(server(), await signRs256(k1, validClaims()))).status, 200);
      assert.equal((await status(server(), await signRs256(k1, validClaims()))).status, 200);
      assert.equal(jwks.fetches - before, 1);
    });

    it('picks up k2 without a restart once k1 is rotated out; a new k1 token is then refused', async (t) => {
      jwks.publish([k2]);
      await sleep(COOLDOWN_MS); // the last fetch was within the cooldown
      const before = jwks.fetches;
      const started = performance.now();
      assert.equal((await status(server(), await signRs256(k2, validClaims()))).status, 200);
      const pickedUpMs = performance.now() - started;
      assert.equal(jwks.fetches - before, 1, 'the unknown kid k2 caused one fetch');

      const old = await server().get('/v2/clients', { token: await signRs256(k1, validClaims()) });
      assert.equal(old.status, 401);
      assert.match(errorMessage(old), /kid/);
      assert.equal(jwks.fetches - before, 1, 'within the cooldown, k1 caused no fetch');
      assert.ok(pickedUpMs < 1000, `k2 took ${pickedUpMs.toFixed(0)} ms`);
      t.diagnostic(`k2 accepted in ${pickedUpMs.toFixed(0)} ms, with one fetch`);
    });

    it('stops trusting a removed key once the set is older than its max age', async () => {
      // k2 removed, k3 added; nothing asks for k3, so only ageing can reveal the change.
      jwks.publish([k3]);
      const before = jwks.fetches;
      // Within the max age the set in hand is used as it is: no fetch per request.
      assert.equal((await status(server(), await signRs256(k2, validClaims()))).status, 200);
      assert.equal(jwks.fetches, before);
      await sleep(MAX_AGE_MS);
      const refused = await server().get('/v2/clients', {
        token: await signRs256(k2, validClaims()),
      });
      assert.equal(refused.status, 401);
      assert.equal(jwks.fetches - before, 1, 'the aged set was fetched once');
      assert.equal((await status(server(), await signRs256(k3, validClaims()))).status, 200);
    });

    it('fetches at most once per cooldown for a stream of unknown kids', async (t) => {
      await sleep(COOLDOWN_MS); // a fetch is allowed now: the worst case
      const before = jwks.fetches;
      const started = Date.now();
      let refused = 0;
      while (Date.now() - started < 2.5 * COOLDOWN_MS) {
        const tokens = await Promise.all(
          Array.from({ length: 20 }, () => signRs256(k3, validClaims(), crypto.randomUUID())),
        );
        const answers = await Promise.all(
          tokens.map((token) => server().get('/v2/clients', { token })),
        );
        refused += answers.filter((answer) => answer.status === 401).length;
        assert.ok(answers.every((answer) => answer.status === 401));
      }
      const allowed = Math.ceil((Date.now() - started) / COOLDOWN_MS);
      const fetched = jwks.fetches - before;
      t.diagnostic(`${refused} unknown kids over ${Date.now() - started} ms: ${fetched} fetches`);
      assert.ok(
        fetched >= 1 && fetched <= allowed,
        `${fetched} fetches for ${refused} unknown kids`,
      );
    });

    it('keeps cached keys working while the endpoint fails or is gone; unknown kids get 401', async (t) => {
      const stranger = await rsaSigningKey('k-stranger');
      const check = async () => {
        // A fresh token each time, so every one is verified against the key set.
        assert.equal((await status(server(), await signRs256(k3, validClaims()))).status, 200);
        const unknown = await server().get('/v2/clients', {
          token: await signRs256(stranger, validClaims()),
        });
        assert.equal(unknown.status, 401);
        errorMessage(unknown);
      };

      jwks.fail(true);
      const before = jwks.fetches;
      const started = Date.now();
      // Past the max age and several cooldowns: the set has aged, and fetches fail.
      while (Date.now() - started < MAX_AGE_MS + 500) {
        await check();
        await sleep(100);
      }
      const attempts = jwks.fetches - before;
      const allowed = Math.ceil((Date.now() - started) / COOLDOWN_MS) + 1;
      t.diagnostic(`${attempts} fetches of the failing endpoint in ${Date.now() - started} ms`);
      assert.ok(attempts >= 1, 'the failing endpoint was tried');
      assert.ok(
        attempts <= allowed,
        `${attempts} fetches of a failing endpoint (at most ${allowed})`,
      );

      await jwks.stop();
      for (let i = 0; i < 5; i += 1) {
        await check();
        await sleep(COOLDOWN_MS / 2);
      }
    });

    it('resumes by itself when the endpoint returns: a new kid is picked up', async () => {
      await jwks.listen();
      jwks.fail(false);
      jwks.publish([k3, k1]);
      await sleep(COOLDOWN_MS);
      assert.equal((await status(server(), await signRs256(k1, validClaims()))).status, 200);
    });
  },
  async () => {
    jwks = await JwksServer.start([k1]);
    return {
      kind: 'jwks',
      url: jwks.url,
      options: { cooldownMs: COOLDOWN_MS, maxAgeMs: MAX_AGE_MS, timeoutMs: 1000 },
    };
  },
);

// The production defaults (cooldown 30 s, max age 10 min) under a flood of unknown kids.
let floodJwks: JwksServer;
const FLOOD = 1000;

describeOnEachBackend(
  'JWKS under a flood of unknown kids (default settings)',
  (server) => {
    after(() => floodJwks.close());

    it(`answers ${FLOOD} tokens with random kids 401 with at most one fetch, valid ones 200`, async (t) => {
      assert.equal((await status(server(), await signRs256(k1, validClaims()))).status, 200);
      const before = floodJwks.fetches;
      // Tokens are signed beforehand, so the timing measures PIE, not RSA signing here.
      const unknown = await Promise.all(
        Array.from({ length: FLOOD }, () =>
          signRs256(k1, validClaims(), `kid-${crypto.randomUUID()}`),
        ),
      );
      const valid = await Promise.all(
        Array.from({ length: FLOOD / 10 }, () => signRs256(k1, validClaims())),
      );
      const latencies: number[] = [];
      const statuses = new Map<string, number>();
      const timed = async (kind: string, token: string) => {
        const started = performance.now();
        const response = await server().get('/v2/clients', { token });
        latencies.push(performance.now() - started);
        const key = `${kind} ${response.status}`;
        statuses.set(key, (statuses.get(key) ?? 0) + 1);
        if (response.status !== 200) errorMessage(response);
      };
      const started = performance.now();
      for (let i = 0; i < FLOOD; i += 50) {
        await Promise.all([
          ...unknown.slice(i, i + 50).map((token) => timed('unknown', token)),
          ...valid.slice(i / 10, i / 10 + 5).map((token) => timed('valid', token)),
        ]);
      }
      const seconds = (performance.now() - started) / 1000;
      latencies.sort((a, b) => a - b);
      const p99 = latencies[Math.floor(latencies.length * 0.99)]!;
      t.diagnostic(
        `${latencies.length} requests in ${seconds.toFixed(2)} s, p99 ${p99.toFixed(1)} ms, ` +
          `${floodJwks.fetches - before} JWKS fetches`,
      );
      assert.deepEqual(Object.fromEntries(statuses), {
        'unknown 401': FLOOD,
        'valid 200': FLOOD / 10,
      });
      assert.ok(floodJwks.fetches - before <= 1, `${floodJwks.fetches - before} fetches`);
      assert.ok(seconds < 15, `the flood took ${seconds.toFixed(1)} s`);
    });
  },
  async () => {
    floodJwks = await JwksServer.start([k1]);
    return { kind: 'jwks', url: floodJwks.url };
  },
);
