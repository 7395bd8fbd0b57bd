import type { Database, Queryable } from '../../src/db/database.js';

/**
 * A switch between an app and its database: while it is down, every statement fails the way a
 * PostgreSQL server that refuses connections makes `pg` fail (ECONNREFUSED), on either
 * backend. It lets a test see what PIE answers while its database cannot be reached (a 503
 * with Retry-After) for one request at a time, without stopping a real server; the outage
 * tests in test/reliability stop a real one.
 */
export class OutageSwitch {
  private isDown = false;

  /** Runs `work` with the database unreachable, and brings it back afterwards. */
  async whileDown<T>(work: () => Promise<T>): Promise<T> {
    this.isDown = true;
    try {
      return await work();
    } finally {
      this.isDown = false;
    }
  }

  /** `db` behind this switch. LISTEN is passed through: it is set up before any outage. */
  wrap(db: Database): Database {
    const guard = <T>(run: () => Promise<T>): Promise<T> =>
      this.isDown ? Promise.reject(refused()) : run();
    const guarded = (q: Queryable): Queryable => ({
      query: <Row>(text: string, values?: readonly unknown[]) =>
        guard(() => q.query<Row>(text, values)),
      exec: (script) => guard(() => q.exec(script)),
    });
    const wrapped: Database = {
      backend: db.backend,
      ...guarded(db),
      get reads() {
        return db.reads === db ? wrapped : guarded(db.reads);
      },
      transaction: (work) => guard(() => db.transaction((tx) => work(guarded(tx)))),
      listen: (channel, onNotify) => db.listen(channel, onNotify),
      close: () => db.close(),
    };
    return wrapped;
  }
}

function refused(): Error {
  return Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), {
    code: 'ECONNREFUSED',
  });
}
