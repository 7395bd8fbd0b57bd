import { parseArgs } from 'node:util';
import { isScope, type Scope } from '../auth/caller.js';
import { loadOrCreateJwtSecret, usesSharedSecret } from '../auth/jwt-secret.js';
import { issueToken } from '../auth/token-issuer.js';
import { ConfigError, loadConfig, type Config } from '../config/config.js';
import { migrate } from '../db/migrate.js';
import { describeDatabase, openDatabase } from '../db/open-database.js';
import { startTracing } from '../observability/tracing-sdk.js';
import { startServer } from '../server.js';
import { workerCommand } from './worker/command.js';

const USAGE = `Usage: pie <command> [options]   (from a checkout: npx pie <command>)

Commands:
  serve     start the HTTP service (PIE_HOST, PIE_PORT, DATABASE_URL, PIE_DATA_DIR)
  migrate   apply pending database migrations and exit
  token     print a signed token: --scope "admin" [--client ID]... [--model ID]...
            [--ttl 1h] [--subject NAME]
  worker    run a command per job of one model version: --model M --version V [--url URL]
            [--worker-id ID] [--concurrency 1] [--lease 60] [--wait 20000] [--once]
            -- <command> [args...]   (token: PIE_TOKEN, else minted from the HS256 secret)
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const config = loadConfig();
  switch (command) {
    case 'serve':
      return serve(config);
    case 'migrate':
      return runMigrations(config);
    case 'token':
      return printToken(config, rest);
    case 'worker':
      return workerCommand(config, rest);
    case undefined:
    case 'help':
    case '--help':
      process.stdout.write(USAGE);
      return command === undefined ? 1 : 0;
    default:
      process.stderr.write(`unknown command "${command}"\n\n${USAGE}`);
      return 1;
  }
}

async function serve(config: Config): Promise<number> {
  // Before the server is built: the app registers its request spans only when tracing is on.
  const tracing = config.tracing === undefined ? undefined : startTracing(config.tracing);
  const server = await startServer(config).catch(async (error: unknown) => {
    await tracing?.shutdown();
    throw error;
  });
  const lines = [`PIE is serving at ${server.url}`, `data: ${describeDatabase(config)}`];
  if (usesSharedSecret(config)) {
    const token = await issueToken(loadOrCreateJwtSecret(config), config.jwt, {
      subject: 'admin',
      scopes: ['admin'],
      ttl: '12h',
    });
    lines.push(
      `admin token (12h): ${token}`,
      'more tokens: npx pie token --scope admin [--client ID] [--ttl 1h]',
    );
  }
  lines.push(`API reference: ${server.url}/docs`);
  if (config.tracing !== undefined) {
    lines.push(`traces: OpenTelemetry, exported to ${config.tracing.exporters.join(' and ')}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);

  // A fault that escaped every handler (a driver's stray rejection while the database is away,
  // say) is logged, not fatal: one broken promise must not take every tenant's requests down.
  process.on('unhandledRejection', (reason) => {
    server.app.log.error({ err: reason }, 'unhandled rejection');
  });

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  // A second signal means "now": skip the rest of the grace period.
  const again = (second: NodeJS.Signals) => {
    process.stderr.write(`pie: ${second} again; exiting without waiting\n`);
    process.exit(1);
  };
  process.once('SIGINT', again);
  process.once('SIGTERM', again);
  server.app.log.info(`${signal}: shutting down`);
  await server.close();
  // Last, so the spans of the shutdown's own work are exported too.
  await tracing?.shutdown().catch((error: unknown) => {
    server.app.log.warn({ err: error }, 'could not export the last spans');
  });
  return 0;
}

async function runMigrations(config: Config): Promise<number> {
  // A new embedded database is migrated as it is created: those migrations count too.
  let created: string[] = [];
  const db = await openDatabase(config, { onCreated: (applied) => (created = applied) });
  try {
    const applied = [...created, ...(await migrate(db))];
    process.stdout.write(
      applied.length === 0 ? 'database is up to date\n' : `applied: ${applied.join(', ')}\n`,
    );
    return 0;
  } finally {
    await db.close();
  }
}

async function printToken(config: Config, args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      scope: { type: 'string' },
      client: { type: 'string', multiple: true },
      model: { type: 'string', multiple: true },
      ttl: { type: 'string', default: '1h' },
      subject: { type: 'string', default: 'cli' },
    },
  });
  if (!usesSharedSecret(config)) {
    throw new ConfigError(
      'pie token signs with the HS256 secret; with PIE_JWKS_URL or PIE_JWT_PUBLIC_KEY set, ' +
        'tokens come from your identity provider',
    );
  }
  const requested = (values.scope ?? '').split(/\s+/).filter((scope) => scope !== '');
  const unknown = requested.filter((scope) => !isScope(scope));
  if (requested.length === 0 || unknown.length > 0) {
    throw new ConfigError(
      `--scope needs space-separated scopes from: admin read registry:write tenants:write ` +
        `assignments:write jobs:write jobs:complete${unknown.length > 0 ? ` (unknown: ${unknown.join(', ')})` : ''}`,
    );
  }
  const token = await issueToken(loadOrCreateJwtSecret(config), config.jwt, {
    subject: values.subject,
    scopes: requested as Scope[],
    clients: values.client ?? '*',
    models: values.model ?? '*',
    ttl: values.ttl,
  });
  process.stdout.write(`${token}\n`);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`pie: ${message}\n`);
    process.exit(error instanceof ConfigError || error instanceof TypeError ? 2 : 1);
  },
);
