import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { after, before, it } from 'node:test';
import * as jose from 'jose';
import { base64urlJson } from '../helpers/encoding.js';
import { closeServer, listenOnLoopback } from '../helpers/loopback.js';
import { describeOnEachBackend, errorMessage, TEST_JWT } from '../helpers/test-server.js';
import { sleep } from '../helpers/wait.js';

const inOneHour = () => Math.floor(Date.now() / 1000) + 3600;

function sign(secret: Uint8Array, claims: jose.JWTPayload, alg = 'HS256') {
  return new jose.SignJWT(claims).setProtectedHeader({ alg }).sign(secret);
}

const validClaims = (): jose.JWTPayload => ({
  sub: 'someone',
  scope: 'admin',
  iss: TEST_JWT.issuer,
  aud: TEST_JWT.audience,
  exp: inOneHour(),
});

describeOnEachBackend('callers (HS256)', (server) => {
  const expect401 = async (token: string | null, header?: string) => {
    const response = await server().get('/v2/clients', {
      token: header === undefined ? token : null,
      headers: header === undefined ? {} : { authorization: header },
    });
    assert.equal(response.status, 401, JSON.stringify(response.body));
    return errorMessage(response);
  };

  it('accepts a valid token', async () => {
    const token = await sign(server().secret, validClaims());
    assert.equal((await server().get('/v2/clients', { token })).status, 200);
  });

  it('401: missing, malformed or non-bearer Authorization header', async () => {
    assert.match(await expect401(null), /missing Authorization/);
    assert.match(await expect401(null, 'Basic dXNlcjpwYXNz'), /Bearer/);
    assert.match(await expect401(null, 'Bearer'), /Bearer/);
    assert.match(await expect401('garbage'), /malformed/);
    assert.match(await expect401('a.b.c'), /invalid token/);
  });

  it("401's challenge (RFC 6750) carries the refusal, in the characters it allows", async () => {
    const challenge = async (authorization?: string) => {
      const response = await server().get('/v2/clients', {
        token: null,
        headers: authorization === undefined ? {} : { authorization },
      });
      assert.equal(response.status, 401);
      return { header: response.headers.get('www-authenticate'), message: errorMessage(response) };
    };
    assert.equal((await challenge()).header, 'Bearer realm="pie"');
    assert.equal((await challenge('Basic dXNlcjpwYXNz')).header, 'Bearer realm="pie"');
    assert.equal(
      (await challenge('Bearer')).header,
      'Bearer realm="pie", error="invalid_request", ' +
        `error_description="Authorization header must be 'Bearer <token>'"`,
    );
    const wrongIssuer = await sign(server().secret, { ...validClaims(), iss: 'other' });
    const refused = await challenge(`Bearer ${wrongIssuer}`);
    assert.match(refused.message, /"iss"/);
    assert.equal(
      refused.header,
      `Bearer realm="pie", error="invalid_token", error_description="${refused.message.replaceAll('"', "'")}"`,
    );
  });

  it('401: expired, not yet valid, wrong issuer or audience, missing exp or sub', async () => {
    const secret = server().secret;
    const past = Math.floor(Date.now() / 1000) - 60;
    assert.match(await expect401(await sign(secret, { ...validClaims(), exp: past })), /expired/);
    assert.match(
      await expect401(await sign(secret, { ...validClaims(), nbf: inOneHour() })),
      /"nbf"/,
    );
    assert.match(await expect401(await sign(secret, { ...validClaims(), iss: 'other' })), /"iss"/);
    assert.match(await expect401(await sign(secret, { ...validClaims(), aud: 'other' })), /"aud"/);
    const { exp: _exp, ...noExp } = validClaims();
    assert.match(await expect401(await sign(secret, noExp)), /"exp"/);
    const { sub: _sub, ...noSub } = validClaims();
    assert.match(await expect401(await sign(secret, noSub)), /"sub"/);
  });

  it('a token that verified once is refused after it expires', async () => {
    const token = await sign(server().secret, {
      ...validClaims(),
      exp: Math.floor(Date.now() / 1000) + 2,
    });
    assert.equal((await server().get('/v2/clients', { token })).status, 200);
    await sleep(2100);
    assert.match(await expect401(token), /expired/);
  });

  it('401: wrong signature, tampered payload, alg none, algorithm not allowed', async () => {
    assert.match(
      await expect401(await sign(crypto.randomBytes(32), validClaims())),
      /signature is invalid/,
    );
    const [header, , signature] = (await sign(server().secret, validClaims())).split('.');
    const tampered = `${header}.${base64urlJson({ ...validClaims(), sub: 'root' })}.${signature}`;
    assert.match(await expect401(tampered), /signature is invalid/);
    const unsigned = `${base64urlJson({ alg: 'none', typ: 'JWT' })}.${base64urlJson(validClaims())}.`;
    assert.match(await expect401(unsigned), /not allowed|malformed/);
    assert.match(
      await expect401(await sign(server().secret, validClaims(), 'HS512')),
      /algorithm is not allowed/,
    );
  });

  it('401: malformed scope or grant claims', async () => {
    const secret = server().secret;
    assert.match(await expect401(await sign(secret, { ...validClaims(), scope: 7 })), /scope/);
    assert.match(
      await expect401(await sign(secret, { ...validClaims(), clients: 'client-1' })),
      /"clients"/,
    );
    assert.match(
      await expect401(await sign(secret, { ...validClaims(), models: [1, 2] })),
      /"models"/,
    );
  });

  it('403: a valid token without the scope, or for another client or model', async () => {
    const readOnly = await server().token(['read']);
    const response = await server().put('/v2/clients/auth-a', { name: 'x' }, { token: readOnly });
    assert.equal(response.status, 403);
    assert.match(errorMessage(response), /"tenants:write"/);

    const unknownScopeOnly = await sign(server().secret, { ...validClaims(), scope: 'superuser' });
    assert.equal((await server().get('/v2/clients', { token: unknownScopeOnly })).status, 403);

    const clientA = await server().token(['admin'], { clients: ['auth-a'] });
    assert.equal((await server().put('/v2/clients/auth-a', {}, { token: clientA })).status, 201);
    const other = await server().put('/v2/clients/auth-b', {}, { token: clientA });
    assert.equal(other.status, 403);
    assert.match(errorMessage(other), /client "auth-b"/);

    const modelM = await server().token(['admin'], { models: ['auth-m'] });
    const otherModel = await server().put('/v2/models/auth-n', {}, { token: modelM });
    assert.equal(otherModel.status, 403);
    assert.match(errorMessage(otherModel), /model "auth-n"/);
  });

  it('checks syntax (400) before permission (403), and permission before existence (404)', async () => {
    const readOnly = await server().token(['read']);
    const badBody = await server().put('/v2/clients/x', { name: 1 }, { token: readOnly });
    assert.equal(badBody.status, 400);
    const otherClient = await server().token(['read'], { clients: ['someone-else'] });
    const hidden = await server().get('/v2/clients/does-not-exist', { token: otherClient });
    assert.equal(hidden.status, 403);
    const visible = await server().get('/v2/clients/does-not-exist');
    assert.equal(visible.status, 404);
  });

  it('leaves health, readiness and the API document open', async () => {
    for (const path of ['/healthz', '/readyz', '/openapi.json']) {
      assert.equal((await server().get(path, { token: null })).status, 200, path);
    }
  });
});

// Production keys: an RSA public key given as PEM, and an EC key published as a JWKS.
const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const rsaToken = (claims: jose.JWTPayload, alg = 'RS256') =>
  new jose.SignJWT(claims).setProtectedHeader({ alg }).sign(rsa.privateKey);

describeOnEachBackend(
  'callers (RS256 public key)',
  (server) => {
    it('accepts RS256 tokens signed by the key and nothing else', async () => {
      assert.equal(
        (await server().get('/v2/clients', { token: await rsaToken(validClaims()) })).status,
        200,
      );
      const otherKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
      const forged = await new jose.SignJWT(validClaims())
        .setProtectedHeader({ alg: 'RS256' })
        .sign(otherKey);
      assert.equal((await server().get('/v2/clients', { token: forged })).status, 401);
      // HS256 signed with the public key's bytes: the classic algorithm-confusion attack.
      const pem = rsa.publicKey.export({ type: 'spki', format: 'pem' });
      const confused = await sign(new TextEncoder().encode(pem.toString()), validClaims());
      assert.equal((await server().get('/v2/clients', { token: confused })).status, 401);
    });
  },
  async () => ({
    kind: 'public-key',
    pem: rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  }),
);

const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
let jwksServer: http.Server;
let jwksUrl = '';

before(async () => {
  const jwk = { ...(await jose.exportJWK(ec.publicKey)), kid: 'key-1', alg: 'ES256', use: 'sig' };
  jwksServer = http.createServer((_request, response) => {
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify({ keys: [jwk] }));
  });
  jwksUrl = `http://127.0.0.1:${await listenOnLoopback(jwksServer)}/jwks.json`;
});
after(() => closeServer(jwksServer));

describeOnEachBackend(
  'callers (ES256 JWKS)',
  (server) => {
    it('accepts tokens whose kid is in the key set, refuses unknown kids', async () => {
      const token = (kid: string) =>
        new jose.SignJWT(validClaims())
          .setProtectedHeader({ alg: 'ES256', kid })
          .sign(ec.privateKey);
      assert.equal(
        (await server().get('/v2/clients', { token: await token('key-1') })).status,
        200,
      );
      const unknown = await server().get('/v2/clients', { token: await token('key-2') });
      assert.equal(unknown.status, 401);
      assert.match(errorMessage(unknown), /kid/);
    });
  },
  async () => ({ kind: 'jwks', url: jwksUrl }),
);
