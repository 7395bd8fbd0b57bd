import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { handleError } from '../../src/http/error-handler.js';
import { unprocessable } from '../../src/domain/errors.js';

async function appThatThrows(error: Error) {
  const app = Fastify({ logger: false });
  app.setErrorHandler(handleError);
  app.get('/boom', async () => {
    throw error;
  });
  await app.ready();
  return app;
}

describe('error handler', () => {
  it('answers an AppError with its status, message and details', async () => {
    const app = await appThatThrows(unprocessable('domain is inactive', { problems: [] }));
    const response = await app.inject({ url: '/boom' });
    assert.equal(response.statusCode, 422);
    assert.deepEqual(response.json(), {
      success: false,
      message: 'domain is inactive',
      problems: [],
    });
  });

  it('hides an unexpected fault behind a 500 that names the request id', async () => {
    const app = await appThatThrows(new Error('password=hunter2 in connection string'));
    const response = await app.inject({ url: '/boom' });
    assert.equal(response.statusCode, 500);
    const body = response.json<{ success: boolean; message: string; request_id: string }>();
    assert.equal(body.success, false);
    assert.doesNotMatch(body.message, /hunter2/);
    assert.ok(body.request_id);
    assert.match(body.message, new RegExp(body.request_id));
  });

  it('answers a database that cannot be reached with a 503 to retry, not a 500', async () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), {
      code: 'ECONNREFUSED',
    });
    const shuttingDown = Object.assign(new Error('terminating connection'), { code: '57P01' });
    const cut = new Error('Connection terminated unexpectedly');
    for (const error of [refused, shuttingDown, cut]) {
      const app = await appThatThrows(error);
      const response = await app.inject({ url: '/boom' });
      assert.equal(response.statusCode, 503, error.message);
      assert.equal(response.headers['retry-after'], '1');
      assert.deepEqual(response.json(), {
        success: false,
        message: 'database unavailable; retry shortly',
      });
    }
  });
});
