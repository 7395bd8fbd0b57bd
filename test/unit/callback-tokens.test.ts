import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as jose from 'jose';
import { loadCallbackTokens, type CallbackTokens } from '../../src/auth/callback-tokens.js';
import type { Database } from '../../src/db/database.js';
import { migrate } from '../../src/db/migrate.js';
import { openPgliteDatabase } from '../../src/db/pglite-database.js';

/**
 * Callback tokens are signed by PIE's own HS256 code (for speed) and verified by jose: what one
 * writes, the other must accept, and nothing altered may pass.
 */
describe('callback tokens', () => {
  let db: Database;
  let tokens: CallbackTokens;
  before(async () => {
    db = await openPgliteDatabase(undefined);
    await migrate(db);
    tokens = await loadCallbackTokens(db);
  });
  after(async () => {
    await db.close();
  });

  const inAnHour = () => new Date(Date.now() + 3_600_000).toISOString();

  it('signs a standard HS256 JWT naming the attempt, which verifies', async () => {
    const token = await tokens.sign({ job_id: '123456789012', attempt: 3, deadline: inAnHour() });
    assert.deepEqual(jose.decodeProtectedHeader(token), { alg: 'HS256', typ: 'JWT' });
    const claims = jose.decodeJwt(token);
    assert.equal(claims.iss, 'pie-callback');
    assert.equal(claims.aud, 'pie-callback');
    assert.equal(claims.sub, 'job:123456789012');
    assert.ok(Math.abs(claims.iat! - Date.now() / 1000) < 5);
    assert.ok(Math.abs(claims.exp! - (Date.now() / 1000 + 7200)) < 5, 'an hour past the deadline');
    assert.deepEqual(await tokens.verify(token), { jobId: '123456789012', attempt: 3 });
  });

  it('refuses a token whose claims or signature were altered, or that expired', async () => {
    const token = await tokens.sign({ job_id: '1', attempt: 1, deadline: inAnHour() });
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const other = Buffer.from(JSON.stringify({ ...jose.decodeJwt(token), attempt: 2 })).toString(
      'base64url',
    );
    await assert.rejects(tokens.verify(`${header}.${other}.${signature}`), /could not be verified/);
    const flipped = signature.startsWith('A') ? `B${signature.slice(1)}` : `A${signature.slice(1)}`;
    await assert.rejects(tokens.verify(`${header}.${payload}.${flipped}`), /could not be verified/);
    const longPast = new Date(Date.now() - 2 * 3_600_000).toISOString();
    const expired = await tokens.sign({ job_id: '1', attempt: 1, deadline: longPast });
    await assert.rejects(tokens.verify(expired), /has expired/);
  });

  it('is verified by every process sharing the database, and by no other', async () => {
    const token = await tokens.sign({ job_id: '7', attempt: 1, deadline: inAnHour() });
    assert.deepEqual(await (await loadCallbackTokens(db)).verify(token), {
      jobId: '7',
      attempt: 1,
    });
    const elsewhere = await openPgliteDatabase(undefined);
    try {
      await migrate(elsewhere);
      await assert.rejects(
        (await loadCallbackTokens(elsewhere)).verify(token),
        /could not be verified/,
      );
    } finally {
      await elsewhere.close();
    }
  });
});
