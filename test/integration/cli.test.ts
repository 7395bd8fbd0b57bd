import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { testBackends } from '../helpers/backends.js';
import { startPie, type PieProcess } from '../helpers/pie-process.js';

const CLI = ['--import', 'tsx', 'src/cli/main.ts'];
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The PIE process `npm start` runs: npm's one child (its shell, replaced by node through exec). */
function servedBy(npm: PieProcess): number {
  const children = fs.readFileSync(`/proc/${npm.child.pid}/task/${npm.child.pid}/children`, 'utf8');
  const [pid] = children.trim().split(/\s+/);
  assert.match(fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /dist\/cli\/main\.js/);
  return Number(pid);
}

function cliEnv(dataDir: string, databaseUrl: string | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PIE_DATA_DIR: dataDir, PIE_PORT: '0' };
  delete env['DATABASE_URL'];
  delete env['PIE_JWT_SECRET'];
  if (databaseUrl !== undefined) env['DATABASE_URL'] = databaseUrl;
  return env;
}

function runCli(args: string[], env: NodeJS.ProcessEnv) {
  return spawnSync(process.execPath, [...CLI, ...args], { env, encoding: 'utf8', timeout: 60_000 });
}

for (const backend of testBackends()) {
  describe(`pie command line [${backend.name}]`, () => {
    it('serve prints its URL, data and an admin token; token mints tokens it accepts', async () => {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pie-cli-'));
      const database = backend.name === 'postgres' ? await backend.open() : undefined;
      const env = cliEnv(dataDir, database?.url);
      const server = await startPie(env);
      try {
        const url = server.url;
        assert.match(
          server.output(),
          backend.name === 'pglite' ? /embedded PGlite in/ : /PostgreSQL at/,
        );
        const adminToken = /admin token \(12h\): (\S+)/.exec(server.output())?.[1];
        assert.ok(adminToken, 'banner shows an admin token');

        const minted = runCli(['token', '--scope', 'tenants:write read', '--client', 'cli-1'], env);
        assert.equal(minted.status, 0, minted.stderr);
        const token = minted.stdout.trim();
        assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'stdout is the token alone');

        const put = (client: string, bearer: string) =>
          fetch(`${url}/v2/clients/${client}`, {
            method: 'PUT',
            headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
            body: '{}',
          });
        assert.equal((await put('cli-1', token)).status, 201);
        assert.equal((await put('cli-2', token)).status, 403, 'the --client claim holds');
        assert.equal((await put('cli-2', adminToken)).status, 201);

        if (backend.name === 'pglite') {
          const second = runCli(['migrate'], env);
          assert.equal(second.status, 1, 'a second process may not open the embedded database');
          assert.match(second.stderr, /in use by process/);
        }
      } finally {
        server.child.kill('SIGTERM');
        assert.equal(await server.exited, 0, 'SIGTERM stops it cleanly');
      }
      const migrated = runCli(['migrate'], env);
      assert.equal(migrated.status, 0, migrated.stderr);
      assert.match(migrated.stdout, /database is up to date/);
      await database?.dispose();
      fs.rmSync(dataDir, { recursive: true, force: true });
    });
    it('npm start builds PIE and serves it from dist/, creating the embedded database in a child', async () => {
      const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pie-start-'));
      const database = backend.name === 'postgres' ? await backend.open() : undefined;
      const env = cliEnv(dataDir, database?.url);
      const server = await startPie(env, ['npm', 'start']);
      try {
        const adminToken = /admin token \(12h\): (\S+)/.exec(server.output())?.[1];
        const put = await fetch(`${server.url}/v2/clients/start-1`, {
          method: 'PUT',
          headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
          body: '{}',
        });
        assert.equal(put.status, 201, 'migrated, from the migrations folder beside dist/');
        const ui = await fetch(`${server.url}/ui/`);
        assert.equal(ui.status, 200, 'the console, from its folder beside dist/');
        assert.match(await ui.text(), /<html/i);
        assert.ok(fs.existsSync(path.join(ROOT, 'dist', 'cli', 'main.js')));
        if (backend.name === 'pglite') {
          // Built JavaScript (no tsx in the process) and a data folder made and migrated in a
          // child: the embedded server starts well under its 300 MB budget (about 240 MB).
          const rss = /VmRSS:\s+(\d+) kB/.exec(
            fs.readFileSync(`/proc/${servedBy(server)}/status`, 'utf8'),
          );
          const mb = Number(rss?.[1]) / 1024;
          assert.ok(mb < 300, `RSS of the embedded pie serve at start: ${mb.toFixed(0)} MB`);
        }
        // npm hands SIGTERM to PIE itself (`exec`), which shuts down cleanly.
        server.child.kill('SIGTERM');
        assert.equal(await server.exited, 0);
      } finally {
        server.child.kill('SIGKILL');
        await database?.dispose();
        fs.rmSync(dataDir, { recursive: true, force: true });
      }
    });
  });
}

describe('pie command line: bad input', () => {
  it('token refuses unknown scopes and bad settings with a clear message', () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pie-cli-'));
    const env = cliEnv(dataDir, undefined);
    const unknown = runCli(['token', '--scope', 'root'], env);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown: root/);
    const badPort = runCli(['token', '--scope', 'admin'], { ...env, PIE_PORT: 'eighty' });
    assert.equal(badPort.status, 2);
    assert.match(badPort.stderr, /PIE_PORT must be an integer/);
    const noCommand = runCli(['frobnicate'], env);
    assert.equal(noCommand.status, 1);
    assert.match(noCommand.stderr, /unknown command "frobnicate"/);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
});

describe("the package's pie command (npx pie)", () => {
  const root = ROOT;

  /** `npx pie <args>` from the checkout, with an npx cache of its own, as after `npm ci`. */
  function npxPie(args: string[], env: NodeJS.ProcessEnv) {
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'pie-npx-'));
    try {
      return spawnSync('npx', ['pie', ...args], {
        cwd: root,
        env: { ...env, npm_config_cache: cache, npm_config_update_notifier: 'false' },
        encoding: 'utf8',
        timeout: 60_000,
      });
    } finally {
      fs.rmSync(cache, { recursive: true, force: true });
    }
  }

  it('is the bin of the package, for the Node versions it names', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
      bin?: Record<string, string>;
      engines?: Record<string, string>;
    };
    assert.deepEqual(manifest.bin, { pie: 'bin/pie.mjs' });
    assert.equal(manifest.engines?.['node'], '>=20.19');
    assert.ok(
      fs.statSync(path.join(root, 'bin/pie.mjs')).mode & 0o111,
      'the launcher is executable',
    );
  });

  it('npx pie --help prints the usage and exits 0; no command or an unknown one exits 1', () => {
    const env = cliEnv(fs.mkdtempSync(path.join(os.tmpdir(), 'pie-cli-')), undefined);
    const help = npxPie(['--help'], env);
    assert.equal(help.status, 0, help.stderr);
    assert.match(help.stdout, /^Usage: pie <command>/);
    for (const command of ['serve', 'migrate', 'token', 'worker']) {
      assert.match(help.stdout, new RegExp(`^  ${command} `, 'm'));
    }
    const none = spawnSync(process.execPath, ['bin/pie.mjs'], { cwd: root, env, encoding: 'utf8' });
    assert.equal(none.status, 1);
    assert.match(none.stdout, /^Usage: pie <command>/);
    const unknown = npxPie(['frobnicate'], env);
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
  });

  it('npx pie token prints the token alone; the launcher creates an embedded database', () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'pie-cli-'));
    const env = cliEnv(dataDir, undefined);
    const minted = npxPie(['token', '--scope', 'admin'], env);
    assert.equal(minted.status, 0, minted.stderr);
    assert.match(minted.stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/, 'fit for TOKEN=$(npx pie token ...)');
    // The first start makes the database in a forked node process, which must read TypeScript
    // as the launcher's own process does.
    const migrated = spawnSync(process.execPath, ['bin/pie.mjs', 'migrate'], {
      cwd: root,
      env,
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(migrated.status, 0, migrated.stderr);
    assert.match(migrated.stdout, /applied: /);
    fs.rmSync(dataDir, { recursive: true, force: true });
  });
});
