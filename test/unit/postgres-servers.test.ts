import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { isDatabaseUnavailable } from '../../src/db/connection-errors.js';
import {
  NoServerFitsError,
  parseServerList,
  ServerFinder,
  ServerListError,
} from '../../src/db/postgres-servers.js';
import { listenOnLoopback } from '../helpers/loopback.js';

/** The machine's PostgreSQL (a primary) as the tests' other servers see it. */
const SHARED = new URL(process.env['DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test');

/** A port that refuses connections: listened on, then closed. */
async function refusedPort(): Promise<number> {
  const server = net.createServer();
  const port = await listenOnLoopback(server);
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('a connection string naming several servers', () => {
  it('reads each host and port, and the rest of the string, as libpq spells them', () => {
    const list = parseServerList(
      'postgres://pie:s%40cret@db1:5433,db2,[::1]:6000/pie?target_session_attrs=read-write&sslmode=disable',
    );
    assert.equal(list.attrs, 'read-write');
    assert.deepEqual(list.servers, [
      { host: 'db1', port: 5433 },
      { host: 'db2', port: 5432 },
      { host: '::1', port: 6000 },
    ]);
    assert.equal(
      list.connectionStringFor(list.servers[1]!),
      'postgres://pie:s%40cret@db2:5432/pie?sslmode=disable',
    );
    assert.equal(
      list.connectionStringFor(list.servers[2]!),
      'postgres://pie:s%40cret@[::1]:6000/pie?sslmode=disable',
    );
  });

  it('takes a port= parameter as the default port and keeps one server as a list of one', () => {
    const list = parseServerList('postgresql://h1,h2:7000/db?port=6543');
    assert.deepEqual(list.servers, [
      { host: 'h1', port: 6543 },
      { host: 'h2', port: 7000 },
    ]);
    assert.equal(list.attrs, 'any');
    assert.equal(parseServerList('postgres://u@h/db').servers.length, 1);
  });

  it('names what is wrong with a string it cannot use', () => {
    assert.throws(() => parseServerList('mysql://h/db'), ServerListError);
    assert.throws(
      () => parseServerList('postgres://h/db?target_session_attrs=writable'),
      /target_session_attrs must be one of any, read-write, read-only, primary, standby, prefer-standby, not "writable"/,
    );
    assert.throws(
      () => parseServerList('postgres://h1:99999,h2/db'),
      /"h1:99999" has no valid port/,
    );
    assert.throws(() => parseServerList('postgres://h1,,h2/db'), /"" is not a host/);
  });
});

describe('finding the server that fits target_session_attrs', () => {
  it('skips a server that refuses and picks the writable one', async () => {
    const down = await refusedPort();
    const list = parseServerList(
      `postgres://${SHARED.username}@127.0.0.1:${down},${SHARED.host}${SHARED.pathname}?target_session_attrs=read-write`,
    );
    const found = await new ServerFinder(list).find();
    assert.deepEqual(found, { host: SHARED.hostname, port: Number(SHARED.port || 5432) });
  });

  it('with no standby among them, finds none, and says why as a database unavailable', async () => {
    const down = await refusedPort();
    const list = parseServerList(
      `postgres://${SHARED.username}@127.0.0.1:${down},${SHARED.host}${SHARED.pathname}?target_session_attrs=standby`,
    );
    const error = await new ServerFinder(list).find().then(
      () => assert.fail('a primary is not a standby'),
      (caught: unknown) => caught,
    );
    assert.ok(error instanceof NoServerFitsError);
    assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${down}: .*ECONNREFUSED`));
    assert.match(error.message, /:\d+: primary\)$/);
    assert.equal(isDatabaseUnavailable(error), true, 'answered 503, not 500');
    // prefer-standby takes the primary when no standby answers.
    const preferring = parseServerList(
      `postgres://${SHARED.username}@${SHARED.host}${SHARED.pathname}?target_session_attrs=prefer-standby`,
    );
    assert.equal((await new ServerFinder(preferring).find()).host, SHARED.hostname);
  });
});
