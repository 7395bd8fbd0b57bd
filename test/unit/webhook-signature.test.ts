import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { signWebhook, verifyWebhook } from '../../src/dispatch/handlers/webhook-signature.js';

// The Standard Webhooks specification's published test vector.
const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const id = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
const timestamp = 1614265330;
const body = '{"test": 2432232314}';
const signature = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';

function headers(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signature,
    ...overrides,
  };
}

describe('webhook signatures', () => {
  it('reproduces the Standard Webhooks test vector', () => {
    assert.equal(signWebhook(secret, id, timestamp, body), signature);
  });

  it('signs the same with or without the whsec_ prefix', () => {
    assert.equal(signWebhook(secret.slice('whsec_'.length), id, timestamp, body), signature);
  });

  it('verifies the test vector within the tolerance', () => {
    assert.equal(verifyWebhook(secret, headers(), body, 300, timestamp + 299), true);
    assert.equal(verifyWebhook(secret, new Headers(headers()), body, 300, timestamp - 300), true);
  });

  it('refuses a timestamp outside the tolerance', () => {
    assert.equal(verifyWebhook(secret, headers(), body, 300, timestamp + 301), false);
    assert.equal(verifyWebhook(secret, headers(), body, 300, timestamp - 301), false);
  });

  it('refuses an altered body, id, timestamp or secret', () => {
    const now = timestamp;
    assert.equal(verifyWebhook(secret, headers(), '{"test": 2432232315}', 300, now), false);
    assert.equal(
      verifyWebhook(secret, headers({ 'webhook-id': 'msg_other' }), body, 300, now),
      false,
    );
    const ts = headers({ 'webhook-timestamp': String(timestamp + 1) });
    assert.equal(verifyWebhook(secret, ts, body, 300, now), false);
    const otherSecret = 'whsec_' + Buffer.from('another secret').toString('base64');
    assert.equal(verifyWebhook(otherSecret, headers(), body, 300, now), false);
  });

  it('refuses missing headers, malformed timestamps and unknown versions', () => {
    const { 'webhook-id': _id, ...withoutId } = headers();
    assert.equal(verifyWebhook(secret, withoutId, body, 300, timestamp), false);
    const badTs = headers({ 'webhook-timestamp': '1614265330.5' });
    assert.equal(verifyWebhook(secret, badTs, body, 300, timestamp), false);
    const v2 = headers({ 'webhook-signature': signature.replace('v1,', 'v2,') });
    assert.equal(verifyWebhook(secret, v2, body, 300, timestamp), false);
    const truncated = headers({ 'webhook-signature': signature.slice(0, -4) });
    assert.equal(verifyWebhook(secret, truncated, body, 300, timestamp), false);
  });

  it('accepts any one of several space-separated signatures (secret rotation)', () => {
    const rotated = headers({ 'webhook-signature': `v1,bm90IGl0 ${signature}` });
    assert.equal(verifyWebhook(secret, rotated, body, 300, timestamp), true);
  });
});
