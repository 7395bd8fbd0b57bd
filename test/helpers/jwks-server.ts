import crypto from 'node:crypto';
import http from 'node:http';
import * as jose from 'jose';
import { closeServer, listenOnLoopback } from './loopback.js';

/** An RS256 signing key an identity provider would hold, published under `kid`. */
export interface SigningKey {
  kid: string;
  privateKey: crypto.KeyObject;
  publicKey: crypto.KeyObject;
  jwk: jose.JWK;
}

export async function rsaSigningKey(kid: string): Promise<SigningKey> {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  return { kid, privateKey, publicKey, jwk };
}

/**
 * A JWKS endpoint on loopback, as an identity provider serves it: the published keys can be
 * rotated, it counts every fetch, and it can fail (503) or stop listening, for outage tests.
 */
export class JwksServer {
  /** Requests for the key set since start, answered or failed. */
  fetches = 0;
  private keys: jose.JWK[] = [];
  private failing = false;

  private readonly server = http.createServer((_request, response) => {
    this.fetches += 1;
    if (this.failing) {
      response.writeHead(503, { 'content-type': 'application/json' });
      return response.end('{"error":"unavailable"}');
    }
    response.writeHead(200, { 'content-type': 'application/json' });
    return response.end(JSON.stringify({ keys: this.keys }));
  });
  private port = 0;

  static async start(keys: SigningKey[]): Promise<JwksServer> {
    const jwks = new JwksServer();
    jwks.publish(keys);
    await jwks.listen();
    return jwks;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/.well-known/jwks.json`;
  }

  /** Replaces the published keys (a rotation). */
  publish(keys: SigningKey[]): void {
    this.keys = keys.map((key) => key.jwk);
  }

  /** Answer 503 to every fetch (true) or serve the keys again (false). */
  fail(failing: boolean): void {
    this.failing = failing;
  }

  /** Stops listening: fetches are refused at the TCP level until `listen`. */
  async stop(): Promise<void> {
    await closeServer(this.server);
  }

  /** Listens (again, on the same port once it has one). */
  async listen(): Promise<void> {
    this.port = await listenOnLoopback(this.server, this.port);
  }

  async close(): Promise<void> {
    if (this.server.listening) await this.stop();
  }
}

/** Claims PIE accepts (issuer and audience as in TEST_JWT), valid for an hour. */
export function validClaims(extra: jose.JWTPayload = {}): jose.JWTPayload {
  const now = Math.floor(Date.now() / 1000);
  return {
    sub: 'idp-user',
    scope: 'admin',
    iss: 'pie',
    aud: 'pie',
    iat: now,
    exp: now + 3600,
    // A fresh jti makes every token distinct, so none is answered from the verified-token cache.
    jti: crypto.randomUUID(),
    ...extra,
  };
}

/** An RS256 token signed by `key`, naming `kid` (the key's own unless given). */
export function signRs256(key: SigningKey, claims: jose.JWTPayload, kid = key.kid) {
  return new jose.SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid }).sign(key.privateKey);
}
