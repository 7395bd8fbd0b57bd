import assert from 'node:assert/strict';
import http from 'node:http';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import {
  classifyAddress,
  createAddressGuard,
  type AddressGuard,
  type AddressKind,
} from '../../src/dispatch/handlers/address-guard.js';
import type { DeliveryContext } from '../../src/dispatch/handlers/handler-adapter.js';
import { cancelHttp, deliverHttp } from '../../src/dispatch/handlers/http.handler.js';
import { parseRetryAfter } from '../../src/dispatch/handlers/retry-after.js';
import { verifyWebhook } from '../../src/dispatch/handlers/webhook-signature.js';
import type { Envelope } from '../../src/domain/delivery.js';
import { closeServer, listenOnLoopback } from '../helpers/loopback.js';
import { waitFor } from '../helpers/wait.js';

const secret = 'whsec_' + Buffer.from('a signing secret of 32 bytes....').toString('base64');

const envelope: Envelope = {
  job_id: 'job_01',
  job_type: 'predict',
  attempt: 2,
  model_id: 'churn',
  model_version: '1.0.0',
  client_id: 'acme',
  domain_id: 'retail',
  service_id: null,
  assignment_id: 'asg_01',
  assignment_key: 'customer-42',
  config: { threshold: 0.5 },
  input: { text: 'héllo' },
  features: null,
  trigger: null,
  deadline: '2030-01-01T00:00:00.000Z',
  callback: {
    url: 'http://pie.test/v2/jobs/job_01/complete',
    heartbeat_url: 'http://pie.test/v2/jobs/job_01/heartbeat',
    token: 'token',
  },
};

interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface Receiver {
  url: string;
  received: Received[];
  /** Connections the client has not closed (the server keeps its half open for a reply). */
  openSockets: Set<Socket>;
  connections: Socket[];
  close(): Promise<void>;
}

const receivers: Receiver[] = [];

/** A local server that records each request, then lets `respond` answer it (or not). */
async function startReceiver(
  respond: (res: http.ServerResponse, req: Received) => void,
): Promise<Receiver> {
  const received: Received[] = [];
  const openSockets = new Set<Socket>();
  const connections: Socket[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      received.push(request);
      respond(res, request);
    });
  });
  server.on('connection', (socket) => {
    openSockets.add(socket);
    connections.push(socket);
    socket.on('end', () => openSockets.delete(socket));
    socket.on('close', () => openSockets.delete(socket));
  });
  const port = await listenOnLoopback(server);
  const receiver: Receiver = {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    openSockets,
    connections,
    close: () => closeServer(server),
  };
  receivers.push(receiver);
  return receiver;
}

function answer(status: number, headers: Record<string, string> = {}, body = '') {
  return (res: http.ServerResponse) => res.writeHead(status, headers).end(body);
}

function context(signal = new AbortController().signal): DeliveryContext {
  return { signal };
}

describe('http handler delivery', () => {
  let guard: AddressGuard;
  let strictGuard: AddressGuard;

  const deliver = (url: string, signal?: AbortSignal, timeoutMs = 2000) =>
    deliverHttp(envelope, { url, secret }, context(signal), { timeoutMs, guard });

  before(() => {
    guard = createAddressGuard(['127.0.0.1']);
    strictGuard = createAddressGuard([]);
  });

  after(async () => {
    await Promise.all(receivers.map((r) => r.close()));
    await Promise.all([guard.close(), strictGuard.close()]);
  });

  it('posts the exact envelope with a valid Standard Webhooks signature', async () => {
    const receiver = await startReceiver(answer(202));
    assert.deepEqual(await deliver(receiver.url), { kind: 'handed-over' });

    const [request] = receiver.received;
    assert.ok(request);
    assert.equal(verifyWebhook(secret, request.headers, request.body), true);
    const official = new Webhook(secret);
    assert.deepEqual(
      official.verify(request.body, request.headers as Record<string, string>),
      envelope,
    );
    assert.deepEqual(JSON.parse(request.body), envelope);
    assert.equal(
      request.headers['webhook-id'],
      'job_01',
      'the job names the delivery, not the attempt',
    );
    assert.equal(request.headers['content-type'], 'application/json');
    assert.equal(request.headers['user-agent'], 'pie-dispatcher');
    const skew = Math.abs(Number(request.headers['webhook-timestamp']) - Date.now() / 1000);
    assert.ok(skew < 5);
  });

  it('retries a 500, with the start of the body', async () => {
    const receiver = await startReceiver(answer(500, {}, 'database down'));
    assert.deepEqual(await deliver(receiver.url), {
      kind: 'retry',
      error: {
        code: 'http_5xx',
        message: 'the http handler answered 500: database down',
        status: 500,
        body: 'database down',
      },
    });
  });

  it('retries a 503 after its Retry-After seconds', async () => {
    const receiver = await startReceiver(answer(503, { 'retry-after': '7' }));
    const outcome = await deliver(receiver.url);
    assert.equal(outcome.kind, 'retry');
    assert.equal(outcome.kind === 'retry' && outcome.retryAfterMs, 7000);
  });

  it('retries a 429 after its Retry-After date', async () => {
    const at = new Date(Date.now() + 30_000).toUTCString();
    const receiver = await startReceiver(answer(429, { 'retry-after': at }));
    const outcome = await deliver(receiver.url);
    assert.ok(outcome.kind === 'retry');
    assert.equal(outcome.error.code, 'rate_limited');
    assert.equal(outcome.error.status, 429);
    assert.ok(outcome.retryAfterMs !== undefined);
    assert.ok(outcome.retryAfterMs > 28_000 && outcome.retryAfterMs <= 30_000);
  });

  it('reads Retry-After as seconds or an HTTP date, capped at an hour, ignoring garbage', () => {
    const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter(' 0 ', now), 0);
    assert.equal(parseRetryAfter('Wed, 21 Oct 2015 07:28:30 GMT', now), 30_000);
    assert.equal(parseRetryAfter('Wednesday, 21-Oct-15 07:29:00 GMT', now), 60_000);
    assert.equal(parseRetryAfter('Tue, 20 Oct 2015 07:28:00 GMT', now), 0);
    assert.equal(parseRetryAfter('999999', now), 3_600_000);
    assert.equal(parseRetryAfter('Sat, 01 Jan 2050 00:00:00 GMT', now), 3_600_000);
    for (const garbage of [undefined, '', 'soon', '7.5', '-3', '1e3', 'Mon, banana']) {
      assert.equal(parseRetryAfter(garbage, now), undefined, String(garbage));
    }
  });

  it('fails a redirect without following it', async () => {
    const target = await startReceiver(answer(200));
    const receiver = await startReceiver(answer(302, { location: target.url }));
    const outcome = await deliver(receiver.url);
    assert.ok(outcome.kind === 'fail');
    assert.equal(outcome.error.code, 'redirect');
    assert.equal(outcome.error.status, 302);
    assert.equal(outcome.error.location, target.url);
    assert.match(outcome.error.message, /not followed/);
    assert.ok(outcome.error.message.includes(target.url));
    assert.equal(target.received.length, 0);
  });

  it('fails a 404 with its status and at most 512 characters of body', async () => {
    const receiver = await startReceiver(answer(404, {}, 'é'.repeat(20_000)));
    const outcome = await deliver(receiver.url);
    assert.ok(outcome.kind === 'fail');
    assert.equal(outcome.error.code, 'http_4xx');
    assert.equal(outcome.error.status, 404);
    assert.equal(outcome.error.body, 'é'.repeat(512));
  });

  it('retries when the handler does not answer in time, leaving no socket open', async () => {
    const receiver = await startReceiver(() => {});
    const started = Date.now();
    const outcome = await deliver(receiver.url, undefined, 300);
    const elapsed = Date.now() - started;
    assert.ok(outcome.kind === 'retry');
    assert.equal(outcome.error.code, 'request_timeout');
    // undici checks its response timers every half second, so a timeout may run up to ~1 s late.
    assert.ok(elapsed >= 290 && elapsed < 2500, `took ${elapsed} ms`);
    assert.equal(receiver.received.length, 1);
    await waitFor('the timed-out socket to close', () => receiver.openSockets.size === 0, 2000, 10);
    assert.equal(receiver.connections.length, 1, 'no replacement connection is left idle');
  });

  it('retries when the connection is refused', async () => {
    const closed = await startReceiver(answer(200));
    await closed.close();
    const outcome = await deliver(closed.url);
    assert.ok(outcome.kind === 'retry');
    assert.equal(outcome.error.code, 'connection_failed');
    assert.equal(outcome.error.cause, 'ECONNREFUSED');
  });

  it('retries when the host name does not resolve', async () => {
    const outcome = await deliver('http://pie-handler.invalid/hook');
    assert.ok(outcome.kind === 'retry');
    assert.equal(outcome.error.code, 'connection_failed');
  });

  it('reports a cancelled delivery as a retry for the dispatcher to judge', async () => {
    const receiver = await startReceiver(() => {});
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('shutting down')), 50);
    const outcome = await deliver(receiver.url, controller.signal);
    assert.ok(outcome.kind === 'retry');
    assert.equal(outcome.error.code, 'aborted');
    assert.match(outcome.error.message, /shutting down/);

    const before = receiver.received.length;
    assert.equal((await deliver(receiver.url, controller.signal)).kind, 'retry');
    assert.equal(receiver.received.length, before);
  });

  it('fails a url that is not http(s)', async () => {
    for (const url of ['ftp://127.0.0.1/hook', 'not a url', 'file:///etc/passwd']) {
      const outcome = await deliver(url);
      assert.ok(outcome.kind === 'fail');
      assert.equal(outcome.error.code, 'invalid_url');
    }
  });

  it('refuses a loopback address that is not allow-listed, before any request', async () => {
    const receiver = await startReceiver(answer(200));
    const outcome = await deliverHttp(envelope, { url: receiver.url, secret }, context(), {
      timeoutMs: 2000,
      guard: strictGuard,
    });
    assert.ok(outcome.kind === 'fail');
    assert.equal(outcome.error.code, 'address_not_allowed');
    assert.equal(outcome.error.address, '127.0.0.1');
    assert.equal(outcome.error.address_kind, 'loopback');
    assert.equal(receiver.received.length, 0);
  });

  it('refuses a host name that resolves to loopback unless it is allow-listed', async () => {
    const receiver = await startReceiver(answer(200));
    const url = receiver.url.replace('127.0.0.1', 'localhost');
    const via = async (g: AddressGuard) =>
      deliverHttp(envelope, { url, secret }, context(), { timeoutMs: 2000, guard: g });

    const refused = await via(strictGuard);
    assert.ok(refused.kind === 'fail');
    assert.equal(refused.error.code, 'address_not_allowed');
    assert.equal(refused.error.host, 'localhost');
    assert.equal(receiver.received.length, 0);

    const byName = createAddressGuard(['localhost']);
    try {
      assert.deepEqual(await via(byName), { kind: 'handed-over' });
    } finally {
      await byName.close();
    }
    // Allowing the address 127.0.0.1 lets localhost through to it (and to no other address).
    assert.deepEqual(await via(guard), { kind: 'handed-over' });
    assert.equal(receiver.received.length, 2);
  });
});

describe('http handler cancel notice', () => {
  const guard = createAddressGuard(['127.0.0.1']);
  const strictGuard = createAddressGuard([]);
  const notice = { job_id: 'job_01', attempt: 2, handler_ref: null };
  const tell = (url: string, with_ = guard) =>
    cancelHttp(notice, { url, secret }, new AbortController().signal, {
      timeoutMs: 2000,
      guard: with_,
    });

  after(async () => {
    await Promise.all(receivers.map((r) => r.close()));
    await Promise.all([guard.close(), strictGuard.close()]);
  });

  it("posts a signed job.cancelled whose webhook-id is not the delivery's", async () => {
    const receiver = await startReceiver(answer(204));
    assert.deepEqual(await tell(receiver.url), { delivered: true });
    const [request] = receiver.received;
    assert.ok(request);
    assert.equal(verifyWebhook(secret, request.headers, request.body), true);
    assert.deepEqual(JSON.parse(request.body), { type: 'job.cancelled', job_id: 'job_01' });
    assert.equal(request.headers['webhook-id'], 'job_01_cancelled');
  });

  it('counts anything but a 2xx, a refused address or no answer as failed', async () => {
    const refusing = await startReceiver(answer(410));
    const gone = await tell(refusing.url);
    assert.equal(!gone.delivered && gone.error.code, 'http_status');
    const redirecting = await startReceiver(answer(302, { location: 'http://example.com/' }));
    const moved = await tell(redirecting.url);
    assert.equal(!moved.delivered && moved.error.code, 'http_status');
    const guarded = await tell(refusing.url, strictGuard);
    assert.equal(!guarded.delivered && guarded.error.code, 'address_not_allowed');
    const invalid = await tell('ftp://example.com/hook');
    assert.equal(!invalid.delivered && invalid.error.code, 'invalid_url');
  });
});

describe('address guard', () => {
  const table: [string, AddressKind][] = [
    ['8.8.8.8', 'public'],
    ['1.1.1.1', 'public'],
    ['172.32.0.1', 'public'],
    ['100.128.0.1', 'public'],
    ['2606:4700:4700::1111', 'public'],
    ['::ffff:8.8.8.8', 'public'],
    ['0.0.0.0', 'unspecified'],
    ['0.1.2.3', 'unspecified'],
    ['::', 'unspecified'],
    ['127.0.0.1', 'loopback'],
    ['127.255.255.254', 'loopback'],
    ['::1', 'loopback'],
    ['0:0:0:0:0:0:0:1', 'loopback'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['10.0.0.1', 'private'],
    ['10.255.255.255', 'private'],
    ['172.16.0.1', 'private'],
    ['172.31.255.255', 'private'],
    ['192.168.1.1', 'private'],
    ['::ffff:10.1.2.3', 'private'],
    ['::ffff:192.168.0.1', 'private'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['169.254.169.254', 'link-local'],
    ['::ffff:169.254.169.254', 'link-local'],
    ['fe80::1', 'link-local'],
    ['febf::1', 'link-local'],
    ['100.64.0.1', 'shared'],
    ['100.127.255.255', 'shared'],
    ['224.0.0.1', 'multicast'],
    ['ff02::1', 'multicast'],
    ['255.255.255.255', 'reserved'],
    ['2002:7f00:1::1', 'reserved'],
    ['64:ff9b::7f00:1', 'loopback'],
    ['64:ff9b::10.1.2.3', 'private'],
    ['64:ff9b::8.8.8.8', 'public'],
    ['fe80::1%eth0', 'link-local'],
    ['localhost', 'invalid'],
    ['256.1.1.1', 'invalid'],
  ];

  for (const [address, kind] of table) {
    it(`classifies ${address} as ${kind}`, () => {
      assert.equal(classifyAddress(address), kind);
    });
  }

  it('allows listed host names, addresses and CIDR ranges, and public addresses', () => {
    const guard = createAddressGuard([
      ' LocalHost. ',
      '10.0.0.0/8',
      '192.168.1.5',
      '[fd00::1]',
      '',
    ]);
    try {
      assert.equal(guard.allows('localhost', '127.0.0.1'), true);
      assert.equal(guard.allows('LOCALHOST', '::1'), true);
      assert.equal(guard.allows('internal', '10.9.8.7'), true);
      assert.equal(guard.allows('internal', '::ffff:10.9.8.7'), true);
      assert.equal(guard.allows('internal', '192.168.1.5'), true);
      assert.equal(guard.allows('internal', 'fd00::1'), true);
      assert.equal(guard.allows('example.com', '93.184.215.14'), true);
      assert.equal(guard.allows('internal', '192.168.1.6'), false);
      assert.equal(guard.allows('internal', '127.0.0.1'), false);
      assert.equal(guard.allows('metadata', '169.254.169.254'), false);
    } finally {
      void guard.close();
    }
  });

  it('rejects allow-list entries that are neither names nor valid ranges', () => {
    assert.throws(() => createAddressGuard(['10.0.0.0/33']), /invalid prefix/);
    assert.throws(() => createAddressGuard(['10.0.0.0/x']), /invalid prefix/);
    assert.throws(() => createAddressGuard(['not an ip/8']), /not an IP/);
  });
});
