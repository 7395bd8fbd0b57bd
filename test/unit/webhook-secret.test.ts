import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Webhook } from 'standardwebhooks';
import { signWebhook } from '../../src/dispatch/handlers/webhook-signature.js';
import {
  generateWebhookSecret,
  webhookSecretKey,
  webhookSecretProblem,
} from '../../src/domain/webhook-secret.js';

/**
 * The secret rule against the official JavaScript library (`standardwebhooks`): every secret
 * PIE accepts reads as the same key there, so PIE's signatures are the library's.
 */

const id = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
const timestamp = 1614265330;
const body = '{"test": 2432232314}';

const officialSignature = (secret: string) =>
  new Webhook(secret).sign(id, new Date(timestamp * 1000), body);

// Text near base64: its alphabet, the URL-safe letters, padding in any place, whitespace.
const BASE64ISH = [
  ...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/',
  ...'====',
  '-',
  '_',
  ' ',
  '\n',
];

describe('webhook secrets', () => {
  it("accepts the specification's example secret", () => {
    assert.equal(webhookSecretProblem('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'), undefined);
  });

  it('accepts whsec_ and the base64 of any 24 to 64 bytes, signing as the library does', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 24, maxLength: 64 }), (bytes) => {
        const secret = 'whsec_' + Buffer.from(bytes).toString('base64');
        assert.equal(webhookSecretProblem(secret), undefined);
        assert.deepEqual(webhookSecretKey(secret), Buffer.from(bytes));
        assert.equal(signWebhook(secret, id, timestamp, body), officialSignature(secret));
      }),
    );
  });

  it('refuses keys shorter than 24 or longer than 64 bytes', () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ maxLength: 23 }), fc.uint8Array({ minLength: 65, maxLength: 90 })),
        (bytes) => {
          const secret = 'whsec_' + Buffer.from(bytes).toString('base64');
          assert.match(webhookSecretProblem(secret) ?? '', /24 to 64 bytes/);
          assert.equal(webhookSecretKey(secret), undefined);
        },
      ),
    );
  });

  it('accepts only text the library reads as the same key, and in canonical form', () => {
    fc.assert(
      fc.property(fc.stringOf(fc.constantFrom(...BASE64ISH), { maxLength: 96 }), (text) => {
        const secret = 'whsec_' + text;
        const key = webhookSecretKey(secret);
        if (key === undefined) {
          assert.notEqual(webhookSecretProblem(secret), undefined);
          return;
        }
        assert.equal(webhookSecretProblem(secret), undefined);
        assert.equal(key.toString('base64'), text, 'canonical standard base64, padded');
        assert.equal(signWebhook(secret, id, timestamp, body), officialSignature(secret));
      }),
      { numRuns: 2000 },
    );
  });

  it('generates 32 random bytes in the accepted form', () => {
    const secret = generateWebhookSecret();
    assert.equal(webhookSecretProblem(secret), undefined);
    assert.equal(webhookSecretKey(secret)?.length, 32);
    assert.notEqual(generateWebhookSecret(), secret);
  });
});
