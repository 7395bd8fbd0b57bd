import os from 'node:os';
import { createTokenVerifier } from './auth/token-verifier.js';
import { verificationKey } from './auth/verification-key.js';
import type { Config } from './config/config.js';
import type { Database } from './db/database.js';
import { migrate } from './db/migrate.js';
import { openDatabase } from './db/open-database.js';
import { CHURNING_TABLES, needsOwnVacuum } from './db/vacuum.js';
import { createCancelRelayService, createDispatchServices } from './dispatch/dispatch-services.js';
import { buildApp } from './http/app.js';
import type { TypedApp } from './http/typed-app.js';
import { ServiceList, type BackgroundService } from './services/background-service.js';
import { RetentionService } from './services/retention.service.js';
import { SchedulerService } from './services/scheduler.service.js';
import { VacuumService } from './services/vacuum.service.js';
import { createAppContext } from './usecases/context.js';

export interface RunningServer {
  app: TypedApp;
  db: Database;
  url: string;
  close(): Promise<void>;
}

/** Opens the database, applies pending migrations, starts listening and the background services. */
export async function startServer(config: Config): Promise<RunningServer> {
  const db = await openDatabase(config);
  try {
    await migrate(db);
    // Asked before listening, so that a failure here stops nothing already started.
    // PostgreSQL's autovacuum, where it runs, does this better; PGlite has none.
    const ownVacuum = config.vacuumS > 0 && (await needsOwnVacuum(db));
    const { ctx, setListeningUrl } = await createAppContext(db, config.publicUrl, {
      quotaOpenJobs: config.limits.quotaOpenJobs,
      events: { pollMs: config.events.pollMs },
      // Events are published while serving, once `app` exists.
      onListenerError: (error) => app.log.error({ err: error }, 'a job event listener failed'),
    });
    const verifier = createTokenVerifier(verificationKey(config), config.jwt);
    const app = await buildApp(ctx, {
      verifier,
      bodyLimitBytes: config.bodyLimitBytes,
      rateLimit: { rps: config.limits.rateLimitRps, burst: config.limits.rateLimitBurst },
      maxJsonDepth: config.limits.maxJsonDepth,
      logger: { level: config.logLevel },
      events: config.events,
    });
    await app.listen({ host: config.host, port: config.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address !== null ? address.port : config.port;
    const host = config.host.includes(':') ? `[${config.host}]` : config.host;
    const url = `http://${host}:${port}`;
    setListeningUrl(url);

    const dispatch = config.dispatch.enabled
      ? createDispatchServices(
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
      : createCancelRelayService(ctx, config.dispatch, app.log);
    const services: BackgroundService[] = [...dispatch.services];
    if (ownVacuum) {
      services.push(new VacuumService(db, config.vacuumS * 1000, app.log, ctx.metrics));
      if (db.backend === 'postgres') {
        app.log.warn(
          `autovacuum is off on this PostgreSQL server: PIE vacuums ` +
            `${CHURNING_TABLES.join(', ')} itself every ${config.vacuumS} s`,
        );
      }
    }
    // Every process runs it; the retention lock lets one delete at a time. Idempotency records
    // past 24 h are deleted even when PIE_RETENTION_DAYS=0 keeps every job.
    services.push(
      new RetentionService(
        db,
        {
          intervalMs: config.retentionIntervalS * 1000,
          jobsMaxAgeS: config.retentionDays > 0 ? config.retentionDays * 86_400 : undefined,
          eventsMaxAgeS: config.events.retentionS,
        },
        app.log,
        ctx.metrics,
      ),
    );
    // Every process fires schedules, dispatching or not (PIE_DISPATCH=off): each tick is
    // claimed by one of them, so more processes only make ticks less late.
    if (config.schedulePollMs > 0) {
      services.push(new SchedulerService(ctx, config.schedulePollMs, app.log));
    }
    const background = new ServiceList(services, [dispatch.close]);
    background.start();
    return {
      app,
      db,
      url,
      /**
       * Shuts down in the order the queue and a load balancer need: readiness fails and long
       * polls answer at once; deliveries in flight get PIE_SHUTDOWN_GRACE_S to finish, then the
       * jobs this process still holds are released to the queue; the HTTP server, which kept
       * serving meanwhile (handlers' completions among it), stops accepting and finishes the
       * requests it has; the database closes last.
       */
      async close() {
        app.log.info('shutting down: readiness is now false');
        ctx.wakeups.drain();
        await background.stop(config.shutdownGraceS * 1000);
        await app.close();
        await ctx.wakeups.close();
        await ctx.stops.close();
        await db.close();
      },
    };
  } catch (error) {
    await db.close();
    throw error;
  }
}
