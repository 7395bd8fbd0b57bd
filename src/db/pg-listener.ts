import pg from 'pg';

/** Where a listener connects: the server in use now, and whom to tell when it is lost. */
export interface ListenTarget {
  connectionString(): string;
  noticeFailure(error: unknown): void;
}

/**
 * LISTEN needs a connection of its own, held for as long as it listens. When the connection
 * drops (the server restarted, the network broke, a failover) it reconnects with backoff, to
 * the server in use by then, and reports `undefined` so callers look for work they may have
 * missed meanwhile.
 */
export class Listener {
  private client: pg.Client | undefined;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Bumped by every connection attempt, so an attempt overtaken by a newer one gives up. */
  private attempt = 0;

  constructor(
    private readonly target: ListenTarget,
    private readonly channel: string,
    private readonly onNotify: (payload: string | undefined) => void,
  ) {}

  async start(): Promise<void> {
    const attempt = ++this.attempt;
    const client = new pg.Client({
      connectionString: this.target.connectionString(),
      keepAlive: true,
    });
    client.on('notification', (message) => {
      if (message.channel === this.channel) this.onNotify(message.payload);
    });
    // A broken connection may say so with 'error', with 'end', or both; either means reconnect.
    let dead = false;
    const lost = (error?: Error) => {
      dead = true;
      if (error !== undefined) this.target.noticeFailure(error);
      if (this.client === client) this.reconnect(RECONNECT_MIN_MS);
    };
    client.on('error', lost);
    client.on('end', () => lost());
    try {
      await client.connect();
      await client.query(`listen ${pg.Client.prototype.escapeIdentifier(this.channel)}`);
    } catch (error) {
      await client.end().catch(() => undefined);
      // Refused, or a standby (LISTEN cannot run during recovery): the server may have moved.
      this.target.noticeFailure(error);
      throw error;
    }
    if (this.stopped || attempt !== this.attempt) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    // Lost between LISTEN and here: nobody was told, so start over.
    if (dead) this.reconnect(RECONNECT_MIN_MS);
  }

  private reconnect(delayMs: number): void {
    if (this.stopped || this.retryTimer !== undefined) return;
    const old = this.client;
    this.client = undefined;
    old?.end().catch(() => undefined);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.start().then(
        () => {
          if (!this.stopped) this.onNotify(undefined);
        },
        () => this.reconnect(Math.min(Math.max(delayMs * 2, RECONNECT_MIN_MS), RECONNECT_MAX_MS)),
      );
    }, delayMs);
    this.retryTimer.unref();
  }

  /**
   * The server in use moved (a failover) while this connection may still be up: a primary
   * turned read-only keeps its sessions, and would keep this one hearing nothing. Listen on the
   * server in use now, at once.
   */
  moved(): void {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.reconnect(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}

// Short enough that wake-ups resume within seconds of the server coming back; the dispatcher's
// slow poll covers the gap meanwhile.
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 5000;
