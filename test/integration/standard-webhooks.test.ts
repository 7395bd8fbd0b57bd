import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import type { Envelope } from '../../src/domain/delivery.js';
import { assertError, assertStatus, expectBody } from '../helpers/assertions.js';
import {
  createTenant,
  ROUTE_CONTRACT,
  runJob,
  uniqueId,
  type Tenant,
} from '../helpers/fixtures.js';
import { closeServer, listenOnLoopback } from '../helpers/loopback.js';
import { describeOnEachBackend, type TestServer } from '../helpers/test-server.js';
import { waitForValue } from '../helpers/wait.js';

/**
 * PIE's http handler deliveries, checked the way a receiver would: with the official Standard
 * Webhooks library (`standardwebhooks` on npm), for every form of secret PIE accepts, and with
 * the secrets it must refuse at registration.
 */

const secretOf = (bytes: Buffer) => 'whsec_' + bytes.toString('base64');

/** 25 bytes whose base64 has "+", "/" and "==" padding: the whole standard alphabet's edge. */
const EDGE_KEY = Buffer.concat([Buffer.from('fbefbeffffff'.repeat(4), 'hex'), Buffer.from([0xfb])]);

const ACCEPTED: Record<string, string> = {
  '24 bytes (the least)': secretOf(crypto.randomBytes(24)),
  '32 bytes, one "=" of padding': secretOf(crypto.randomBytes(32)),
  '64 bytes (the most), "==" padding': secretOf(crypto.randomBytes(64)),
  '25 bytes with "+", "/" and "=="': secretOf(EDGE_KEY),
};

const THIRTY_TWO = crypto.randomBytes(32);
const REJECTED: Record<string, string> = {
  'a shared password': 'my-shared-secret',
  'URL-safe base64 ("-" and "_")': 'whsec_' + EDGE_KEY.toString('base64url') + '==',
  'URL-safe base64 without padding': 'whsec_' + EDGE_KEY.toString('base64url'),
  'nothing after whsec_': 'whsec_',
  'an empty string': '',
  'standard base64 without its padding': secretOf(THIRTY_TWO).replace(/=+$/, ''),
  'no whsec_ prefix': THIRTY_TWO.toString('base64'),
  '16 bytes (too short)': secretOf(crypto.randomBytes(16)),
  '23 bytes (one too few)': secretOf(crypto.randomBytes(23)),
  '65 bytes (one too many)': secretOf(crypto.randomBytes(65)),
  'whitespace inside': secretOf(THIRTY_TWO).replace(/^(.{20})/, '$1 '),
  'a trailing newline': secretOf(THIRTY_TWO) + '\n',
  'bits set after the last byte': secretOf(EDGE_KEY).replace('+w==', '+x=='),
};

const RULE = /"whsec_" followed by the standard base64 .* of 24 to 64 bytes/;

interface Delivery {
  headers: Record<string, string>;
  body: string;
  envelope: Envelope;
}

/**
 * A model handler over HTTP that keeps each delivery as it came (raw body and headers) and
 * answers 202, or 500 to the first attempt of a job whose input asks for it.
 */
class Receiver {
  readonly deliveries: Delivery[] = [];
  private server!: http.Server;
  url = '';

  async start() {
    this.server = http.createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString()));
      request.on('end', () => {
        const envelope = JSON.parse(body) as Envelope;
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(request.headers)) {
          if (typeof value === 'string') headers[name] = value;
        }
        this.deliveries.push({ headers, body, envelope });
        const failFirst = envelope.input['fail_first'] === true && envelope.attempt === 1;
        response.writeHead(failFirst ? 500 : 202).end(failFirst ? 'not yet' : '');
      });
    });
    this.url = `http://127.0.0.1:${await listenOnLoopback(this.server)}/hook`;
  }

  /** The deliveries of one job (job ids repeat across the two backends' databases). */
  of(tenant: Tenant, jobId: string): Delivery[] {
    return this.deliveries.filter(
      (d) => d.envelope.client_id === tenant.clientId && d.envelope.job_id === jobId,
    );
  }

  close() {
    return closeServer(this.server);
  }
}

const receiver = new Receiver();
before(() => receiver.start());
after(() => receiver.close());

const versionPath = (modelId: string, version: string) =>
  `/v2/models/${modelId}/versions/${version}`;

/** A tenant whose default assignment runs version 1.0.0 with an http handler to the receiver. */
function httpTenant(server: TestServer, secret: string) {
  return createTenant(server, {
    version: { handler: { type: 'http', url: receiver.url, secret } },
  });
}

async function deliveries(tenant: Tenant, jobId: string, count = 1): Promise<Delivery[]> {
  return waitForValue(
    `${count} deliveries of job ${jobId}`,
    () => {
      const found = receiver.of(tenant, jobId);
      return found.length >= count ? found : undefined;
    },
    15_000,
    25,
  );
}

/** The official library's verdict on a delivery: the parsed body, or it throws. */
function verified(secret: string, delivery: Delivery): unknown {
  return new Webhook(secret).verify(delivery.body, delivery.headers);
}

async function storedHandler(server: TestServer, modelId: string, version: string) {
  const { rows } = await server.db.query<{ handler: Record<string, unknown> }>(
    'select handler from model_versions where model_id = $1 and model_version = $2',
    [modelId, version],
  );
  return rows[0]?.handler;
}

describeOnEachBackend(
  'Standard Webhooks',
  (server) => {
    describe('deliveries verify with the official library', () => {
      for (const [form, secret] of Object.entries(ACCEPTED)) {
        it(`a secret of ${form}`, async () => {
          const tenant = await httpTenant(server(), secret);
          const jobId = await runJob(server(), tenant);
          const [delivery] = await deliveries(tenant, jobId);
          assert.ok(delivery);
          assert.deepEqual(verified(secret, delivery), delivery.envelope);
          assert.equal(delivery.headers['webhook-id'], jobId);
          const other = secretOf(crypto.randomBytes(32));
          assert.throws(() => verified(other, delivery), /No matching signature/);
        });
      }

      it('a secret PIE generated, at creation and on update', async () => {
        const tenant = await createTenant(server(), { assignDefault: false });
        const created = await server().put(versionPath(tenant.modelId, '2.0.0'), {
          features: [],
          handler: { type: 'http', url: receiver.url },
        });
        const createdSecret = expectBody<{ handler: { secret: string } }>(created, 201).handler
          .secret;
        assertStatus(
          await server().put(`${tenant.domainPath}/assignments/default`, {
            model_id: tenant.modelId,
            model_version: '2.0.0',
          }),
          201,
        );
        const first = await runJob(server(), tenant);
        const [atCreation] = await deliveries(tenant, first);
        assert.ok(atCreation);
        assert.deepEqual(verified(createdSecret, atCreation), atCreation.envelope);

        const updated = await server().put(versionPath(tenant.modelId, '2.0.0'), {
          features: [],
          handler: { type: 'http', url: receiver.url },
        });
        const updatedSecret = expectBody<{ handler: { secret: string } }>(updated, 200).handler
          .secret;
        assert.notEqual(updatedSecret, createdSecret, 'a handler sent without one gets a new one');
        const second = await runJob(server(), tenant);
        const [onUpdate] = await deliveries(tenant, second);
        assert.ok(onUpdate);
        assert.deepEqual(verified(updatedSecret, onUpdate), onUpdate.envelope);
        assert.throws(() => verified(createdSecret, onUpdate), /No matching signature/);
      });
    });

    it("a retried delivery keeps the first one's webhook-id; the body names the attempt", async () => {
      const secret = ACCEPTED['32 bytes, one "=" of padding']!;
      const tenant = await httpTenant(server(), secret);
      const jobId = await runJob(server(), tenant, { input: { fail_first: true } });
      const [first, retried] = await deliveries(tenant, jobId, 2);
      assert.ok(first && retried);
      assert.equal(first.envelope.attempt, 1);
      assert.equal(retried.envelope.attempt, 2, 'the 500 was retried as the next attempt');
      assert.equal(retried.headers['webhook-id'], first.headers['webhook-id']);
      assert.equal(first.headers['webhook-id'], jobId);
      assert.notEqual(retried.envelope.callback.token, first.envelope.callback.token);
      for (const delivery of [first, retried]) {
        assert.deepEqual(verified(secret, delivery), delivery.envelope);
      }
      // The retried attempt's own callback token completes the job.
      const completion = await server().post(
        retried.envelope.callback.url.slice(server().url.length),
        { status: 'success', output: { ok: true } },
        { token: retried.envelope.callback.token },
      );
      assertStatus(completion, 200);
    });

    describe('registration refuses every other secret with a 422 naming the rule', () => {
      for (const [form, secret] of Object.entries(REJECTED)) {
        it(form, async () => {
          const s = server();
          const modelId = uniqueId('whsec');
          assertStatus(await s.put(`/v2/models/${modelId}`, {}), 201);
          const handler = { type: 'http', url: receiver.url, secret };
          const refused = await s.put(versionPath(modelId, '1'), { features: [], handler });
          assert.match(assertError(refused, 422), RULE);
          assertError(await s.get(versionPath(modelId, '1')), 404);

          // On update too, leaving the stored handler as it was.
          const good = ACCEPTED['24 bytes (the least)']!;
          assertStatus(
            await s.put(versionPath(modelId, '1'), {
              features: [],
              handler: { type: 'http', url: receiver.url, secret: good },
            }),
            201,
          );
          const update = await s.put(versionPath(modelId, '1'), { features: [], handler });
          assert.match(assertError(update, 422), RULE);
          assert.equal((await storedHandler(s, modelId, '1'))?.['secret'], good);
        });
      }

      it('says what is wrong with the one sent', async () => {
        const s = server();
        const modelId = uniqueId('whsec');
        assertStatus(await s.put(`/v2/models/${modelId}`, {}), 201);
        const put = (secret: string) =>
          s.put(versionPath(modelId, '1'), {
            features: [],
            handler: { type: 'http', url: receiver.url, secret },
          });
        assert.match(assertError(await put('my-shared-secret'), 422), /does not start with/);
        assert.match(assertError(await put('whsec_'), 422), /nothing after "whsec_"/);
        assert.match(
          assertError(await put(REJECTED['URL-safe base64 ("-" and "_")']!), 422),
          /not canonical standard base64/,
        );
        assert.match(
          assertError(await put(REJECTED['16 bytes (too short)']!), 422),
          /decodes to 16 bytes/,
        );
      });
    });

    it('a generated secret is shown once, in the answer that set it, never on reads', async () => {
      const s = server();
      const modelId = uniqueId('generated');
      assertStatus(await s.put(`/v2/models/${modelId}`, {}), 201);
      const path = versionPath(modelId, '1');
      const url = receiver.url;

      const created = await s.put(path, { features: [], handler: { type: 'http', url } });
      const secret = expectBody<{ handler: { type: string; url: string; secret: string } }>(
        created,
        201,
      ).handler.secret;
      assert.deepEqual(created.body.handler, { type: 'http', url, secret });
      assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/);
      assert.equal(Buffer.from(secret.slice('whsec_'.length), 'base64').length, 32);
      assert.deepEqual(await storedHandler(s, modelId, '1'), { type: 'http', url, secret });

      const reads = [
        await s.get(path),
        await s.get(`/v2/models/${modelId}/versions`),
        await s.put(path, { features: [], timeout_s: 60 }),
      ];
      for (const read of reads) {
        assert.ok(read.status === 200, JSON.stringify(read.body));
        const text = JSON.stringify(read.body);
        assert.ok(!text.includes('"secret"') && !text.includes(secret), text);
      }

      // A secret the caller chose is theirs already: the answer does not echo it.
      const chosen = ACCEPTED['64 bytes (the most), "==" padding']!;
      const set = await s.put(path, {
        features: [],
        handler: { type: 'http', url, secret: chosen },
      });
      assert.deepEqual(expectBody<{ handler: unknown }>(set, 200).handler, { type: 'http', url });
      assert.equal((await storedHandler(s, modelId, '1'))?.['secret'], chosen);
    });

    it('a secret stored before the rule keeps signing as it did, until replaced', async () => {
      const tenant = await httpTenant(server(), ACCEPTED['24 bytes (the least)']!);
      const legacy = 'my-shared-secret';
      await server().db.query(
        `update model_versions set handler = jsonb_set(handler, '{secret}', to_jsonb($3::text))
          where model_id = $1 and model_version = $2`,
        [tenant.modelId, tenant.version, legacy],
      );
      // Settings other than the handler still change; re-sending the old secret does not pass.
      assertStatus(
        await server().put(versionPath(tenant.modelId, tenant.version), {
          features: ROUTE_CONTRACT,
          timeout_s: 600,
        }),
        200,
      );
      assert.equal(
        (await storedHandler(server(), tenant.modelId, tenant.version))?.['secret'],
        legacy,
      );

      const jobId = await runJob(server(), tenant);
      const [delivery] = await deliveries(tenant, jobId);
      assert.ok(delivery);
      // The key PIE always took from it: Node's lenient base64 reading of the text.
      const key = Buffer.from(legacy, 'base64');
      const signed = `${delivery.headers['webhook-id']}.${delivery.headers['webhook-timestamp']}.${delivery.body}`;
      const expected = crypto.createHmac('sha256', key).update(signed).digest('base64');
      assert.equal(delivery.headers['webhook-signature'], `v1,${expected}`);
    });
  },
  undefined,
  {},
);
