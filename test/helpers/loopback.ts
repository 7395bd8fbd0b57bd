import type http from 'node:http';
import net from 'node:net';

/**
 * The servers tests stand up beside PIE (handlers, identity providers, proxies, fakes) listen
 * on 127.0.0.1 only, on a port the system picks.
 */

/** Starts `server` listening on 127.0.0.1 (on `port`, or a free one); resolves to the port. */
export async function listenOnLoopback(server: net.Server, port = 0): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as net.AddressInfo).port;
}

/** Stops `server` at once: its open connections are cut rather than waited for. */
export async function closeServer(server: http.Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

/** A port on 127.0.0.1 that was free a moment ago (nothing listens on it now). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  const port = await listenOnLoopback(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
