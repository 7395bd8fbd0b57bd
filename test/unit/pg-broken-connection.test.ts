import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Database } from '../../src/db/database.js';
import { openPostgresDatabase } from '../../src/db/pg-database.js';
import { listenOnLoopback } from '../helpers/loopback.js';
import { waitFor } from '../helpers/wait.js';

/**
 * A PostgreSQL server shutting down ("pg_ctl stop -m fast") sends every backend a FATAL
 * 57P01 and closes it. When that FATAL arrives in the same read as the answer to a query, the
 * answer frees the connection, the pool hands it at once to the next caller waiting for one,
 * and the FATAL then reaches a connection that caller has not yet put a listener on: an
 * 'error' event nobody handles, which ends the process (it did, in the database-outage test).
 *
 * A real server cannot be made to put the two in one read on cue, so this speaks the wire
 * protocol itself: just enough of it (startup, simple queries) for the `pg` driver.
 */
class WireServer {
  private readonly server = net.createServer((socket) => this.accept(socket));
  /** Queries answered only when released, one per connection, in arrival order. */
  private readonly held: { socket: net.Socket; release: (fatal: boolean) => void }[] = [];
  holding = false;

  async start(): Promise<string> {
    return `postgres://pie@127.0.0.1:${await listenOnLoopback(this.server)}/pie`;
  }

  get heldCount(): number {
    return this.held.length;
  }

  /** Answers the oldest held query, with a FATAL in the same write when `fatal`. */
  releaseOne(fatal: boolean): void {
    this.held.shift()?.release(fatal);
  }

  releaseAll(): void {
    while (this.held.length > 0) this.releaseOne(false);
  }

  async stop(): Promise<void> {
    this.releaseAll();
    this.server.close();
  }

  private accept(socket: net.Socket): void {
    let buffer = Buffer.alloc(0);
    let started = false;
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (!started) {
          if (buffer.length < 4 || buffer.length < buffer.readInt32BE(0)) return;
          buffer = buffer.subarray(buffer.readInt32BE(0));
          started = true;
          socket.write(Buffer.concat([message('R', int32(0)), message('Z', Buffer.from('I'))]));
          continue;
        }
        if (buffer.length < 5 || buffer.length < 1 + buffer.readInt32BE(1)) return;
        const type = String.fromCharCode(buffer[0]!);
        buffer = buffer.subarray(1 + buffer.readInt32BE(1));
        if (type === 'X') socket.end();
        if (type === 'Q') this.answer(socket);
      }
    });
  }

  private answer(socket: net.Socket): void {
    const reply = (fatal: boolean) => {
      const answer = [message('C', cstring('SELECT 0')), message('Z', Buffer.from('I'))];
      if (fatal) answer.push(fatalMessage());
      socket.write(Buffer.concat(answer));
      if (fatal) socket.end();
    };
    if (this.holding) this.held.push({ socket, release: reply });
    else reply(false);
  }
}

const int32 = (value: number) => {
  const bytes = Buffer.alloc(4);
  bytes.writeInt32BE(value);
  return bytes;
};
const cstring = (text: string) => Buffer.from(`${text}\0`);
const message = (type: string, body: Buffer) =>
  Buffer.concat([Buffer.from(type), int32(body.length + 4), body]);
const fatalMessage = () =>
  message(
    'E',
    Buffer.concat([
      cstring('SFATAL'),
      cstring('VFATAL'),
      cstring('C57P01'),
      cstring('Mterminating connection due to administrator command'),
      Buffer.from([0]),
    ]),
  );

describe('PostgreSQL adapter: a connection broken as the pool hands it over', () => {
  const server = new WireServer();
  let db: Database;
  before(async () => {
    db = await openPostgresDatabase(await server.start());
  });
  after(async () => {
    await db.close();
    await server.stop();
  });

  it('fails the transaction that got it and keeps the process and the pool working', async () => {
    // Fill the pool (20 connections) with queries the server holds, so a transaction waits.
    server.holding = true;
    const busy = Array.from({ length: 20 }, () => db.query('select 1'));
    await waitFor('the pool to fill', () => server.heldCount >= 20, 30_000, 5);
    const waiting = db.transaction((tx) => tx.query('select 1'));
    waiting.catch(() => undefined);

    // The answer that frees a connection carries the FATAL behind it, in one write.
    server.releaseOne(true);
    await assert.rejects(waiting);

    server.holding = false;
    server.releaseAll();
    await Promise.all(busy);
    // The broken connection was dropped: later work gets a sound one.
    await db.transaction((tx) => tx.query('select 1'));
    assert.equal((await db.query('select 1')).rowCount, 0);
  });
});
