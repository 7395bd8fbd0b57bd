import http from 'node:http';

/** One Server-Sent Event as received: its id, type and parsed JSON data. */
export interface ReceivedEvent {
  id: string | undefined;
  event: string;
  // Tests assert the fields they care about.
  data: any;
}

/**
 * A Server-Sent Events client over node:http, so that a test can also stop reading (a slow
 * consumer) and see the connection closed by the server. Parses the standard wire format.
 */
export class SseClient {
  readonly events: ReceivedEvent[] = [];
  comments = 0;
  /** Set once the connection has ended, by either side. */
  ended = false;
  private buffer = '';
  private waiters: (() => void)[] = [];

  private constructor(
    readonly status: number,
    readonly headers: http.IncomingHttpHeaders,
    private readonly response: http.IncomingMessage,
    /** The body, for an answer that is not a stream. */
    readonly body: string,
  ) {}

  static open(
    url: string,
    token: string,
    headers: Record<string, string> = {},
  ): Promise<SseClient> {
    return new Promise((resolve, reject) => {
      const request = http.get(url, { headers: { authorization: `Bearer ${token}`, ...headers } });
      request.on('error', reject);
      request.on('response', (response) => {
        if (response.statusCode !== 200) {
          let body = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (body += chunk));
          response.on('end', () =>
            resolve(new SseClient(response.statusCode ?? 0, response.headers, response, body)),
          );
          return;
        }
        const client = new SseClient(200, response.headers, response, '');
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => client.take(chunk));
        const end = () => {
          client.ended = true;
          client.wake();
        };
        response.on('end', end);
        response.on('close', end);
        response.on('error', end);
        // A paused response emits neither 'end' nor 'close'; its socket still closes.
        response.socket.on('close', end);
        resolve(client);
      });
    });
  }

  /** The `job` events received so far. */
  get jobEvents(): ReceivedEvent[] {
    return this.events.filter((event) => event.event === 'job');
  }

  /** Stops reading: the server's writes pile up in the socket buffers. */
  pause(): void {
    this.response.pause();
  }

  resume(): void {
    this.response.resume();
  }

  close(): void {
    this.response.destroy();
  }

  /** Waits until `done()` holds, or fails after `timeoutMs` with what was received. */
  async until(done: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) {
        // The last few events say where it stopped; a burst of thousands would drown them.
        const last = this.events
          .slice(-10)
          .map((e) => [e.id, e.event, e.data?.job_id, e.data?.status]);
        throw new Error(
          `timed out (ended: ${this.ended}); received ${this.events.length} events, the last ${JSON.stringify(last)}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  private take(chunk: string): void {
    this.buffer += chunk;
    let end: number;
    while ((end = this.buffer.indexOf('\n\n')) >= 0) {
      const block = this.buffer.slice(0, end);
      this.buffer = this.buffer.slice(end + 2);
      let id: string | undefined;
      let event = 'message';
      const data: string[] = [];
      let fields = 0;
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) {
          this.comments += 1;
          continue;
        }
        const colon = line.indexOf(':');
        const name = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        fields += 1;
        if (name === 'id') id = value;
        else if (name === 'event') event = value;
        else if (name === 'data') data.push(value);
      }
      if (fields > 0) this.events.push({ id, event, data: JSON.parse(data.join('\n')) });
    }
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}
