import assert from 'node:assert/strict';
import { it } from 'node:test';
import { describeOnEachBackend, errorMessage } from '../helpers/test-server.js';

/** What the server answers under /ui, without a browser (console.test.ts drives one). */
describeOnEachBackend('console assets', (server) => {
  it('answers the app shell for /ui and any page under it, with a strict CSP', async () => {
    for (const path of ['/ui', '/ui/', '/ui/clients/c/domains/d/jobs/123456789012', '/ui/nope']) {
      const response = await server().get(path, { token: null });
      assert.equal(response.status, 200, path);
      assert.match(response.headers.get('content-type') ?? '', /^text\/html/);
      assert.match(response.body as string, /<script type="importmap">/);
      const csp = response.headers.get('content-security-policy') ?? '';
      assert.match(csp, /script-src 'self' 'sha256-[A-Za-z0-9+/=]+'/);
      assert.match(csp, /connect-src 'self'/);
    }
  });

  it('serves the console modules and the libraries from node_modules', async () => {
    for (const path of [
      '/ui/assets/app.js',
      '/ui/assets/pages/job.js',
      '/ui/vendor/preact.mjs',
      '/ui/vendor/preact-hooks.mjs',
      '/ui/vendor/htm.mjs',
      '/ui/vendor/uplot.mjs',
    ]) {
      const response = await server().get(path, { token: null });
      assert.equal(response.status, 200, path);
      assert.match(response.headers.get('content-type') ?? '', /^text\/javascript/, path);
      assert.match(response.body as string, /\b(import|export)\b/, path);
    }
    const css = await server().get('/ui/vendor/uplot.css', { token: null });
    assert.match(css.headers.get('content-type') ?? '', /^text\/css/);
  });

  it('answers 404 with a message for files it does not serve, outside console/ included', async () => {
    for (const path of [
      '/ui/assets/missing.js',
      '/ui/assets/..%2Fpackage.json',
      '/ui/assets/../../package.json',
      '/ui/assets/index.html',
      '/ui/vendor/react.mjs',
    ]) {
      const response = await server().get(path, { token: null });
      if (response.status === 200) {
        // "/ui/assets/../../package.json" is normalised by fetch to /package.json; never served.
        assert.doesNotMatch(String(response.body), /"name": "pie"/, path);
        continue;
      }
      assert.equal(response.status, 404, path);
      errorMessage(response);
    }
  });

  it('keeps /ui out of the OpenAPI document', async () => {
    const document = (await server().get('/openapi.json', { token: null })).body;
    assert.ok(Object.keys(document.paths).every((path) => !path.startsWith('/ui')));
  });
});
