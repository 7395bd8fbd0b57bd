import os from 'node:os';
import { createAppContext } from './app-context.js';
import { createTokenVerifier } from './auth/token-verifier.js';
import { verificationKey } from './auth/verification-key.js';
import type { Config } from './config/config.js';
import type { Database } from './db/database.js';
import { migrate } from './db/migrate.js';
import { openDatabase } from './db/open-database.js';
import { Dispatcher } from './dispatch/dispatcher.js';
import { buildApp } from './http/app.js';
import type { TypedApp } from './http/typed-app.js';

export interface RunningServer {
  app: TypedApp;
  db: Database;
  url: string;
  close(): Promise<void>;
}

/** Opens the database, applies pending migrations, starts listening and dispatching. */
export async function startServer(config: Config): Promise<RunningServer> {
  const db = await openDatabase(config);
  try {
    await migrate(db);
    const { ctx, setListeningUrl } = await createAppContext(db, config.publicUrl);
    const verifier = createTokenVerifier(verificationKey(config), config.jwt);
    const app = await buildApp(ctx, {
      verifier,
      bodyLimitBytes: config.bodyLimitBytes,
      logger: { level: config.logLevel },
    });
    await app.listen({ host: config.host, port: config.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : config.port;
    const host = config.host.includes(':') ? `[${config.host}]` : config.host;
    const url = `http://${host}:${port}`;
    setListeningUrl(url);

    const dispatcher = config.dispatch.enabled
      ? new Dispatcher(
          ctx,
          {
            ...config.dispatch,
            holder: `${os.hostname()}:${process.pid}`,
            pollMs: 1000,
            reapMs: 1000,
            watchMs: 10_000,
          },
          app.log,
        )
      : undefined;
    dispatcher?.start();
    return {
      app,
      db,
      url,
      async close() {
        await app.close();
        await dispatcher?.stop();
        await ctx.wakeups.close();
        await db.close();
      },
    };
  } catch (error) {
    await db.close();
    throw error;
  }
}
