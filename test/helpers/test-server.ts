import crypto from 'node:crypto';
import { after, before, describe } from 'node:test';
import type { Grant, Scope } from '../../src/auth/caller.js';
import { issueToken } from '../../src/auth/token-issuer.js';
import { createTokenVerifier, type VerificationKey } from '../../src/auth/token-verifier.js';
import type { JwtConfig } from '../../src/config/config.js';
import type { Database } from '../../src/db/database.js';
import {
  createDispatchServices,
  type DispatchOptions,
} from '../../src/dispatch/dispatch-services.js';
import { buildApp, type AppOptions } from '../../src/http/app.js';
import type { SseOptions } from '../../src/http/sse-sink.js';
import { ServiceList } from '../../src/services/background-service.js';
import { createAppContext, type AppContext } from '../../src/usecases/context.js';
import type { TypedApp } from '../../src/http/typed-app.js';
import { testBackends, type TestBackend, type TestDatabase } from './backends.js';
import { OutageSwitch } from './outage-switch.js';

export const TEST_JWT: JwtConfig = {
  secret: undefined,
  jwksUrl: undefined,
  publicKeyPem: undefined,
  issuer: 'pie',
  audience: 'pie',
  algorithms: [],
};

/** Quick loops for tests; loopback handlers allowed past the SSRF guard. */
export const TEST_DISPATCH: DispatchOptions = {
  holder: 'test',
  concurrency: 32,
  commandConcurrency: 4,
  commandHandlers: true,
  leaseS: 30,
  pollMs: 200,
  reapMs: 200,
  watchMs: 200,
  httpTimeoutMs: 2000,
  allowHosts: ['127.0.0.1', 'localhost'],
};

/** Limits for a test server; each is off (or the default depth) unless given. */
export interface TestLimits {
  rateLimit?: AppOptions['rateLimit'];
  maxJsonDepth?: number;
  quotaOpenJobs?: number;
  /** Puts the app's database behind a switch, for `whileDatabaseDown`. */
  outageSwitch?: boolean;
  /** Job event streams: heartbeat, the buffer that cuts a consumer off, the log's poll. */
  events?: Partial<SseOptions> & { pollMs?: number };
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  // Tests inspect arbitrary JSON; each asserts the fields it cares about.
  body: any;
}

export interface CallOptions {
  /** A token string, or null for no Authorization header. Default: an admin token. */
  token?: string | null;
  body?: unknown;
  rawBody?: string;
  headers?: Record<string, string>;
}

/** A PIE app listening on a loopback port, backed by a fresh database. */
export class TestServer {
  private constructor(
    readonly backend: TestBackend['name'],
    readonly url: string,
    readonly db: Database,
    readonly secret: Uint8Array,
    readonly adminToken: string,
    readonly ctx: AppContext,
    private readonly app: TypedApp,
    private readonly database: TestDatabase,
    private readonly background: ServiceList,
    private readonly outage: OutageSwitch | undefined,
  ) {}

  /**
   * `key` replaces the default HS256 secret, to test other verification keys; `dispatch`
   * starts the dispatch services with these options over the defaults (tests of handlers); `limits`
   * turns on rate limits, the open-jobs quota or another JSON depth.
   */
  static async start(
    backend: TestBackend,
    key?: VerificationKey,
    dispatch?: Partial<DispatchOptions>,
    limits: TestLimits = {},
  ): Promise<TestServer> {
    const database = await backend.open();
    // Tokens minted here (admin, token()) verify only when the server checks this secret.
    const secret = key?.kind === 'secret' ? key.secret : crypto.randomBytes(32);
    // The app sees the database through the switch; `db` (what tests query) stays reachable.
    const outage = limits.outageSwitch === true ? new OutageSwitch() : undefined;
    const appDb = outage === undefined ? database.db : outage.wrap(database.db);
    const { ctx, setListeningUrl } = await createAppContext(appDb, undefined, {
      quotaOpenJobs: limits.quotaOpenJobs,
      events: { pollMs: limits.events?.pollMs ?? 100 },
    });
    const app = await buildApp(ctx, {
      verifier: createTokenVerifier(key ?? { kind: 'secret', secret }, TEST_JWT),
      bodyLimitBytes: 64 * 1024,
      rateLimit: limits.rateLimit,
      maxJsonDepth: limits.maxJsonDepth,
      events: limits.events,
    });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    setListeningUrl(`http://127.0.0.1:${address.port}`);
    const services =
      dispatch === undefined
        ? undefined
        : createDispatchServices(ctx, { ...TEST_DISPATCH, ...dispatch }, app.log);
    const background = new ServiceList(services?.services ?? [], services ? [services.close] : []);
    background.start();
    const adminToken = await issueToken(secret, TEST_JWT, {
      subject: 'test-admin',
      scopes: ['admin'],
      ttl: '1h',
    });
    return new TestServer(
      backend.name,
      `http://127.0.0.1:${address.port}`,
      database.db,
      secret,
      adminToken,
      ctx,
      app,
      database,
      background,
      outage,
    );
  }

  /** The database's connection string, on the PostgreSQL backend (for a second PIE process). */
  get databaseUrl(): string | undefined {
    return this.database.url;
  }

  /**
   * Runs `work` while every statement the app sends fails as if the database refused
   * connections; needs a server started with `outageSwitch`.
   */
  whileDatabaseDown<T>(work: () => Promise<T>): Promise<T> {
    if (this.outage === undefined) throw new Error('started without outageSwitch');
    return this.outage.whileDown(work);
  }

  token(scopes: Scope[], grants: { clients?: Grant; models?: Grant; ttl?: string } = {}) {
    return issueToken(this.secret, TEST_JWT, {
      subject: 'test',
      scopes,
      clients: grants.clients,
      models: grants.models,
      ttl: grants.ttl ?? '1h',
    });
  }

  async call(method: string, path: string, options: CallOptions = {}): Promise<ApiResponse> {
    const headers: Record<string, string> = { ...options.headers };
    const token = options.token === undefined ? this.adminToken : options.token;
    if (token !== null) headers['authorization'] = `Bearer ${token}`;
    let body: string | undefined;
    if (options.rawBody !== undefined) body = options.rawBody;
    else if (options.body !== undefined) body = JSON.stringify(options.body);
    if (body !== undefined) headers['content-type'] ??= 'application/json';
    const response = await fetch(this.url + path, { method, headers, body });
    // An event stream never ends: its status and headers are the answer, its body is left.
    if ((response.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
      await response.body?.cancel();
      return { status: response.status, headers: response.headers, body: undefined };
    }
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      // leave non-JSON bodies as text
    }
    return { status: response.status, headers: response.headers, body: parsed };
  }

  get(path: string, options?: CallOptions) {
    return this.call('GET', path, options);
  }
  put(path: string, body?: unknown, options?: CallOptions) {
    return this.call('PUT', path, { ...options, body });
  }
  post(path: string, body?: unknown, options?: CallOptions) {
    return this.call('POST', path, { ...options, body });
  }

  async close() {
    await this.app.close();
    await this.background.stop();
    await this.ctx.wakeups.close();
    await this.ctx.stops.close();
    await this.database.dispose();
  }
}

/**
 * Declares `suite` once per backend, each with its own server and database. Every
 * integration test file goes through this, so the whole suite runs on PGlite and, when
 * DATABASE_URL is set, on PostgreSQL.
 */
export function describeOnEachBackend(
  title: string,
  suite: (server: () => TestServer) => void,
  key?: () => Promise<VerificationKey>,
  dispatch?: Partial<DispatchOptions>,
  limits?: TestLimits,
) {
  for (const backend of testBackends()) {
    describe(`${title} [${backend.name}]`, () => {
      let server: TestServer | undefined;
      before(async () => {
        server = await TestServer.start(backend, key && (await key()), dispatch, limits);
      });
      after(async () => {
        await server?.close();
      });
      suite(() => {
        if (server === undefined) throw new Error('server not started');
        return server;
      });
    });
  }
}

/**
 * Asserts the body every error answer has, `{success: false, message}` with a message that is
 * not empty, and returns the message.
 */
export function errorMessage(response: ApiResponse): string {
  const body = response.body as { success?: unknown; message?: unknown };
  if (body?.success !== false || typeof body.message !== 'string' || body.message === '') {
    throw new Error(`not an error body: ${JSON.stringify(response.body)}`);
  }
  return body.message;
}
