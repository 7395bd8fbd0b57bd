import assert from 'node:assert/strict';
import { it } from 'node:test';
import { SCOPES } from '../../src/auth/caller.js';
import { apiOperations as operations, fillPath, validBody } from '../helpers/api-operations.js';
import { describeOnEachBackend, errorMessage } from '../helpers/test-server.js';

/**
 * Walks every /v2 operation of the published document, so a route added later is checked
 * without anyone remembering to: no token and garbage tokens are 401 with an RFC 6750
 * `WWW-Authenticate: Bearer` challenge, a token without the route's scope or for another client
 * or model is 403, and unknown resources are 404.
 */

const PARAMS: Record<string, string> = {
  client_id: 'matrix-client',
  domain_id: 'matrix-domain',
  service_id: 'matrix-service',
  model_id: 'matrix-model',
  version: '1.0.0',
  key: 'default',
  job_id: '123456789012',
  subscription_id: '2489e9ad-2ee2-4e00-8ec9-32d5f69181c0',
  batch_id: '5f0c2a8e-7d1b-4c3e-9a55-2b6f1d0e9c47',
  name: 'matrix-schedule',
};

const fill = (path: string) => fillPath(path, PARAMS);

/** The made-up model the bodies name, so permission is what decides. */
const MODEL = { modelId: PARAMS['model_id']!, version: PARAMS['version']! };

describeOnEachBackend('every route', (server) => {
  it('401 with a Bearer challenge without a token, with a refused one or a malformed header', async () => {
    const expired = await server().token(['admin'], { ttl: '-1m' });
    // RFC 6750: no bearer credentials, no error code; a token read and refused, invalid_token;
    // a Bearer header without one token, invalid_request.
    const refused = (code: string) =>
      new RegExp(
        `^Bearer realm="pie", error="${code}", error_description="[\\x20-\\x21\\x23-\\x5b\\x5d-\\x7e]+"$`,
      );
    const cases: { what: string; authorization: string | null; challenge: RegExp }[] = [
      { what: 'no header', authorization: null, challenge: /^Bearer realm="pie"$/ },
      {
        what: 'another scheme',
        authorization: 'Basic cGllOnBpZQ==',
        challenge: /^Bearer realm="pie"$/,
      },
      {
        what: 'garbage token',
        authorization: 'Bearer garbage',
        challenge: refused('invalid_token'),
      },
      {
        what: 'expired token',
        authorization: `Bearer ${expired}`,
        challenge: refused('invalid_token'),
      },
      {
        what: 'two tokens',
        authorization: 'Bearer one two',
        challenge: refused('invalid_request'),
      },
    ];
    for (const operation of await operations(server())) {
      for (const { what, authorization, challenge } of cases) {
        const response = await server().call(operation.method, fill(operation.path), {
          token: null,
          headers: authorization === null ? {} : { authorization },
          body: validBody(operation, MODEL),
        });
        const label = `${operation.method} ${operation.path}, ${what}`;
        assert.equal(response.status, 401, label);
        errorMessage(response);
        assert.match(response.headers.get('www-authenticate') ?? '', challenge, label);
      }
    }
  });

  it('403 for a token with every scope but the one the route needs', async () => {
    for (const operation of await operations(server())) {
      const others = SCOPES.filter((scope) => scope !== operation.scope && scope !== 'admin');
      const token = await server().token(others);
      const response = await server().call(operation.method, fill(operation.path), {
        token,
        body: validBody(operation, MODEL),
      });
      assert.equal(response.status, 403, `${operation.method} ${operation.path}`);
      assert.match(errorMessage(response), new RegExp(`"${operation.scope}"`));
      assert.equal(response.headers.get('www-authenticate'), null, 'only a 401 challenges');
    }
  });

  it('403 for a token of another client or model', async () => {
    const token = await server().token(['admin'], { clients: ['someone-else'], models: ['other'] });
    for (const operation of await operations(server())) {
      if (!/\{(client_id|model_id)\}/.test(operation.path)) continue;
      const response = await server().call(operation.method, fill(operation.path), {
        token,
        body: validBody(operation, MODEL),
      });
      assert.equal(response.status, 403, `${operation.method} ${operation.path}`);
      assert.match(errorMessage(response), /may not act on (client|model)/);
    }
  });

  it('404 for every route under an unknown client or model', async () => {
    for (const operation of await operations(server())) {
      if (!/\{(client_id|model_id)\}/.test(operation.path)) continue;
      if (operation.method === 'PUT' && /\{(client_id|model_id)\}$/.test(operation.path)) continue;
      const response = await server().call(operation.method, fill(operation.path), {
        body: validBody(operation, MODEL),
      });
      assert.equal(response.status, 404, `${operation.method} ${operation.path}`);
      assert.match(errorMessage(response), /not found/);
    }
  });
});
