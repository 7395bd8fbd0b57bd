import pg from 'pg';

/**
 * A connection string may name several servers, as libpq spells it:
 * `postgres://user@h1:5432,h2:5433/db?target_session_attrs=read-write`. `pg` (node-postgres)
 * reads only one host, so PIE reads the list itself, asks each server in turn what it is, and
 * gives `pg` a connection string for the one that fits. After a failover, `ServerFinder.find`
 * asks again and names the new primary.
 */

/** libpq's `target_session_attrs` values: which of the listed servers a session may use. */
export type SessionAttrs =
  'any' | 'read-write' | 'read-only' | 'primary' | 'standby' | 'prefer-standby';

const SESSION_ATTRS: readonly SessionAttrs[] = [
  'any',
  'read-write',
  'read-only',
  'primary',
  'standby',
  'prefer-standby',
];

export interface ServerAddress {
  host: string;
  port: number;
}

export interface ServerList {
  servers: ServerAddress[];
  attrs: SessionAttrs;
  /** The connection string `pg` is given for one of the servers (the list's other parts kept). */
  connectionStringFor(server: ServerAddress): string;
}

export class ServerListError extends Error {}

// scheme, then optional `user[:password]@`, then the host list, then path, query and fragment.
const URL_PARTS = /^(postgres(?:ql)?:\/\/)([^@/?#]*@)?([^/?#]*)(.*)$/s;

/**
 * Splits a connection string into its servers and its `target_session_attrs`. A string with one
 * host (or none: a Unix socket) is a list of one. Throws a `ServerListError` naming what is wrong.
 */
export function parseServerList(connectionString: string): ServerList {
  const parts = URL_PARTS.exec(connectionString);
  if (parts === null) {
    throw new ServerListError('must be a postgres:// or postgresql:// URL');
  }
  const [, scheme = '', userInfo = '', hostList = '', rest = ''] = parts;
  const [beforeQuery = '', afterQuery] = splitOnce(rest, '?');
  const [query = '', fragment] = splitOnce(afterQuery ?? '', '#');
  const params = new URLSearchParams(query);
  const attrs = params.get('target_session_attrs') ?? 'any';
  if (!(SESSION_ATTRS as readonly string[]).includes(attrs)) {
    throw new ServerListError(
      `target_session_attrs must be one of ${SESSION_ATTRS.join(', ')}, not "${attrs}"`,
    );
  }
  params.delete('target_session_attrs');
  const defaultPort = Number(params.get('port') ?? 5432);
  const servers = hostList === '' ? [] : hostList.split(',').map((h) => parseHost(h, defaultPort));
  const suffix =
    beforeQuery +
    (params.size > 0 ? `?${params.toString()}` : '') +
    (fragment === undefined ? '' : `#${fragment}`);
  return {
    servers,
    attrs: attrs as SessionAttrs,
    connectionStringFor: (server) =>
      `${scheme}${userInfo}${formatHost(server.host)}:${server.port}${suffix}`,
  };
}

function splitOnce(text: string, separator: string): [string, string | undefined] {
  const at = text.indexOf(separator);
  return at === -1 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)];
}

function parseHost(text: string, defaultPort: number): ServerAddress {
  // `[::1]:5432`, `[::1]`, `host:5432` or `host`.
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d*))?$/.exec(text);
  if (match === null) throw new ServerListError(`"${text}" is not a host or host:port`);
  const host = decodeURIComponent(match[1] ?? match[2] ?? '');
  const port = match[3] === undefined || match[3] === '' ? defaultPort : Number(match[3]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ServerListError(`"${text}" has no valid port`);
  }
  return { host, port };
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : encodeURIComponent(host);
}

/** What a server said it is, or why it could not be asked. */
interface Answer {
  server: ServerAddress;
  inRecovery?: boolean;
  readOnly?: boolean;
  error?: Error;
}

/** How long asking one server may take before the next is tried. */
const PROBE_TIMEOUT_MS = 3000;

/**
 * Finds the server a session may use among the listed ones, as libpq does for
 * `target_session_attrs`: each is asked in the order given; the first that fits wins
 * (`prefer-standby`: the first standby, else the first that answers). Concurrent calls share
 * one search.
 */
export class ServerFinder {
  private search: Promise<ServerAddress> | undefined;

  constructor(
    readonly list: ServerList,
    private readonly probeTimeoutMs = PROBE_TIMEOUT_MS,
  ) {}

  find(): Promise<ServerAddress> {
    this.search ??= this.searchOnce().finally(() => {
      this.search = undefined;
    });
    return this.search;
  }

  private async searchOnce(): Promise<ServerAddress> {
    const answers: Answer[] = [];
    for (const server of this.list.servers) {
      const answer = await this.ask(server);
      answers.push(answer);
      if (answer.error === undefined && fits(this.list.attrs, answer)) return server;
    }
    if (this.list.attrs === 'prefer-standby') {
      const reachable = answers.find((answer) => answer.error === undefined);
      if (reachable !== undefined) return reachable.server;
    }
    throw new NoServerFitsError(this.list.attrs, answers);
  }

  private async ask(server: ServerAddress): Promise<Answer> {
    const client = new pg.Client({
      connectionString: this.list.connectionStringFor(server),
      connectionTimeoutMillis: this.probeTimeoutMs,
    });
    // A server dying while it is asked emits 'error'; without a listener that ends the process.
    client.on('error', () => undefined);
    try {
      await client.connect();
      const result = await client.query<{ in_recovery: boolean; read_only: boolean }>(
        `select pg_is_in_recovery() as in_recovery,
                current_setting('transaction_read_only') = 'on' as read_only`,
      );
      const row = result.rows[0];
      return { server, inRecovery: row?.in_recovery, readOnly: row?.read_only };
    } catch (error) {
      return { server, error: error instanceof Error ? error : new Error(String(error)) };
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}

function fits(attrs: SessionAttrs, answer: Answer): boolean {
  switch (attrs) {
    case 'any':
      return true;
    case 'read-write':
      return answer.readOnly === false;
    case 'read-only':
      return answer.readOnly === true;
    case 'primary':
      return answer.inRecovery === false;
    case 'standby':
    case 'prefer-standby':
      return answer.inRecovery === true;
  }
}

/**
 * No listed server fits (yet): during a failover the old primary is gone and the standby not
 * yet promoted. It carries the connection errors among its causes, so a request that meets it
 * is answered 503 like any other "database unreachable".
 */
export class NoServerFitsError extends AggregateError {
  constructor(attrs: SessionAttrs, answers: Answer[]) {
    const said = answers.map(({ server, error, inRecovery, readOnly }) => {
      const name = `${server.host}:${server.port}`;
      if (error !== undefined) return `${name}: ${error.message || error.name}`;
      return `${name}: ${inRecovery === true ? 'standby' : 'primary'}${readOnly === true ? ', read-only' : ''}`;
    });
    super(
      answers.flatMap((answer) => (answer.error === undefined ? [] : [answer.error])),
      `no server fits target_session_attrs=${attrs} (${said.join('; ')})`,
    );
    this.name = 'NoServerFitsError';
  }
}
