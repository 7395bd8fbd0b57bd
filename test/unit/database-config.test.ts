import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import { describeDatabase, openDatabase } from '../../src/db/open-database.js';

describe('database settings (DATABASE_URL, DATABASE_READ_URL)', () => {
  it('refuses a replica without a primary: the embedded database has none', () => {
    assert.throws(
      () => loadConfig({ DATABASE_READ_URL: 'postgres://u@replica/pie' }),
      (error: unknown) =>
        error instanceof ConfigError && /DATABASE_READ_URL needs DATABASE_URL/.test(error.message),
    );
  });

  it('stops the start with the variable named when a server list cannot be read', async () => {
    for (const [name, env] of [
      ['DATABASE_URL', { DATABASE_URL: 'postgres://h1,h2/pie?target_session_attrs=writable' }],
      [
        'DATABASE_READ_URL',
        { DATABASE_URL: 'postgres://h1/pie', DATABASE_READ_URL: 'postgres://h1:0/pie' },
      ],
    ] as const) {
      await assert.rejects(
        openDatabase(loadConfig(env)),
        (error: unknown) => error instanceof ConfigError && error.message.startsWith(`${name} `),
        name,
      );
    }
  });

  it('shows both servers at start without their passwords, a list of hosts included', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgres://pie:secret@h1:5432,h2:5433/pie?target_session_attrs=read-write',
      DATABASE_READ_URL: 'postgresql://reader:hidden@replica/pie',
    });
    assert.equal(
      describeDatabase(config),
      'PostgreSQL at postgres://pie:***@h1:5432,h2:5433/pie?target_session_attrs=read-write, ' +
        'lists from postgresql://reader:***@replica/pie',
    );
  });
});
