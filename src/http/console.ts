import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyReply } from 'fastify';
import type { TypedApp } from './typed-app.js';

/**
 * The console at /ui (docs/CONSOLE.md): plain ES modules from `console/` and three libraries'
 * ES module builds from node_modules, with no build step, so `npm ci && npm start` is all it
 * needs and it works offline. Any other /ui path answers the app shell, so a reload or a shared
 * link opens the same page (the browser's router reads the path). The routes are hidden from
 * the OpenAPI document: they are not part of the API.
 */

const CONSOLE_DIR = fileURLToPath(new URL('../../console/', import.meta.url));
const require = createRequire(import.meta.url);

/** Resolves a file beside a package's entry point (its exports map hides the rest). */
function besideEntry(specifier: string, file: string): string {
  return path.join(path.dirname(require.resolve(specifier)), file);
}

/** /ui/vendor/<name> → the library file it serves. */
const VENDOR: Record<string, string> = {
  'preact.mjs': besideEntry('preact', 'preact.module.js'),
  'preact-hooks.mjs': besideEntry('preact/hooks', 'hooks.module.js'),
  'htm.mjs': besideEntry('htm', 'htm.module.js'),
  'uplot.mjs': besideEntry('uplot', 'uPlot.esm.js'),
  'uplot.css': besideEntry('uplot', 'uPlot.min.css'),
};

// preact/hooks imports the bare name "preact"; the import map tells the browser where it is.
const IMPORT_MAP = JSON.stringify({
  imports: {
    preact: '/ui/vendor/preact.mjs',
    'preact/hooks': '/ui/vendor/preact-hooks.mjs',
    htm: '/ui/vendor/htm.mjs',
    uplot: '/ui/vendor/uplot.mjs',
  },
});

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
};

function shell(): { html: string; csp: string } {
  const html = fs
    .readFileSync(path.join(CONSOLE_DIR, 'index.html'), 'utf8')
    .replace('<!--IMPORT_MAP-->', `<script type="importmap">${IMPORT_MAP}</script>`);
  const mapHash = crypto.createHash('sha256').update(IMPORT_MAP).digest('base64');
  // Scripts only from PIE itself (plus the inline import map, by its hash); the API only on
  // this origin. uPlot positions its parts with inline styles.
  const csp = [
    "default-src 'self'",
    `script-src 'self' 'sha256-${mapHash}'`,
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
  return { html, csp };
}

export function consoleRoutes(app: TypedApp) {
  const { html, csp } = shell();
  const sendShell = (reply: FastifyReply) =>
    reply
      .header('content-type', TYPES['.html'])
      .header('content-security-policy', csp)
      .header('cache-control', 'no-cache')
      .send(html);
  const sendFile = (reply: FastifyReply, file: string) =>
    reply
      .header('content-type', TYPES[path.extname(file)] ?? 'application/octet-stream')
      .header('cache-control', 'no-cache')
      .send(fs.createReadStream(file));
  const notFound = (reply: FastifyReply, what: string) =>
    reply.status(404).send({ success: false, message: `${what} not found in the console` });

  app.get('/ui', { schema: { hide: true } }, (_request, reply) => sendShell(reply));
  app.get('/ui/*', { schema: { hide: true } }, (request, reply) => {
    const rest = (request.params as { '*': string })['*'];
    if (rest.startsWith('vendor/')) {
      const file = VENDOR[rest.slice('vendor/'.length)];
      return file === undefined ? notFound(reply, rest) : sendFile(reply, file);
    }
    if (rest.startsWith('assets/')) {
      // Only plain names of files under console/ (no "..", no hidden files).
      const relative = rest.slice('assets/'.length);
      if (!/^([a-z0-9-]+\/)*[a-z0-9-]+\.(js|css)$/.test(relative)) return notFound(reply, rest);
      const file = path.join(CONSOLE_DIR, relative);
      return fs.existsSync(file) ? sendFile(reply, file) : notFound(reply, rest);
    }
    return sendShell(reply);
  });
}
