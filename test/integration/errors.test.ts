import assert from 'node:assert/strict';
import { it } from 'node:test';
import { describeOnEachBackend, errorMessage } from '../helpers/test-server.js';

describeOnEachBackend('error responses', (server) => {
  it('404 for an unknown route, as JSON', async () => {
    const response = await server().get('/v2/nothing-here');
    assert.equal(response.status, 404);
    assert.match(errorMessage(response), /no route GET \/v2\/nothing-here/);
  });

  it('400 for a body that is not JSON, naming the problem', async () => {
    const response = await server().call('PUT', '/v2/clients/e1', { rawBody: '{"name":' });
    assert.equal(response.status, 400);
    assert.match(errorMessage(response), /not valid JSON/);
  });

  it('400 for prototype-poisoning keys, and nothing is stored', async () => {
    const response = await server().call('PUT', '/v2/clients/e2', {
      rawBody: '{"name":"x","__proto__":{"admin":true}}',
    });
    assert.equal(response.status, 400);
    assert.equal((await server().get('/v2/clients/e2')).status, 404);
  });

  it('400 naming the field for a body of the wrong shape', async () => {
    const wrongType = await server().put('/v2/clients/e3', { name: ['x'] });
    assert.equal(wrongType.status, 400);
    assert.match(errorMessage(wrongType), /body\/name must be string/);
    const unknownField = await server().put('/v2/clients/e3', { nmae: 'x' });
    assert.equal(unknownField.status, 400);
    assert.match(errorMessage(unknownField), /body has an unknown field "nmae"/);
    const notAnObject = await server().call('PUT', '/v2/clients/e3', { rawBody: '[1,2]' });
    assert.equal(notAnObject.status, 400);
  });

  it('413 for a body over the limit, 415 for a body that is not JSON', async () => {
    const big = await server().put('/v2/clients/e4', { name: 'x'.repeat(70 * 1024) });
    assert.equal(big.status, 413);
    assert.match(errorMessage(big), /too large/);
    const text = await server().call('PUT', '/v2/clients/e4', {
      rawBody: 'name=x',
      headers: { 'content-type': 'text/plain' },
    });
    assert.equal(text.status, 415);
    errorMessage(text);
  });

  it('treats an empty body on PUT as no fields', async () => {
    const response = await server().call('PUT', '/v2/clients/e5', {
      rawBody: '',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(response.status, 201);
    assert.equal(response.body.client_id, 'e5');
  });
});
