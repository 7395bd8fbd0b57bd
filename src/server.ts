import type { Config } from './config/config.js';
import { createTokenVerifier } from './auth/token-verifier.js';
import { verificationKey } from './auth/verification-key.js';
import type { Database } from './db/database.js';
import { migrate } from './db/migrate.js';
import { openDatabase } from './db/open-database.js';
import { buildApp } from './http/app.js';
import type { TypedApp } from './http/typed-app.js';

export interface RunningServer {
  app: TypedApp;
  db: Database;
  url: string;
  close(): Promise<void>;
}

/** Opens the database, applies pending migrations and starts listening. */
export async function startServer(config: Config): Promise<RunningServer> {
  const db = await openDatabase(config);
  try {
    await migrate(db);
    const verifier = createTokenVerifier(verificationKey(config), config.jwt);
    const app = await buildApp(
      { db },
      {
        verifier,
        bodyLimitBytes: config.bodyLimitBytes,
        logger: { level: config.logLevel },
      },
    );
    await app.listen({ host: config.host, port: config.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : config.port;
    const host = config.host.includes(':') ? `[${config.host}]` : config.host;
    return {
      app,
      db,
      url: `http://${host}:${port}`,
      async close() {
        await app.close();
        await db.close();
      },
    };
  } catch (error) {
    await db.close();
    throw error;
  }
}
