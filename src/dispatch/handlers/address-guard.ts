import dns from 'node:dns';
import net from 'node:net';
import { Agent, buildConnector, type Dispatcher } from 'undici';

/**
 * Keeps http handlers from reaching PIE's own network (SSRF). The check runs on the address a
 * socket actually connects to, after DNS, so a name that resolves to a public address when a
 * version is registered and to 127.0.0.1 when a job is delivered (DNS rebinding) is still refused.
 */

export type AddressKind =
  | 'public'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'shared'
  | 'multicast'
  | 'reserved'
  | 'invalid';

export interface AddressGuard {
  /** An undici dispatcher whose connections refuse addresses the guard does not allow. */
  readonly dispatcher: Dispatcher;
  /** Whether `host` (as written in the URL) may be reached at the resolved `address`. */
  allows(host: string, address: string): boolean;
  /** Closes the dispatcher's sockets. */
  close(): Promise<void>;
}

export class AddressNotAllowedError extends Error {
  readonly code = 'ERR_ADDRESS_NOT_ALLOWED';

  constructor(
    readonly host: string,
    readonly address: string,
    readonly kind: AddressKind,
  ) {
    super(
      host === address
        ? `${address} is a ${kind} address, which http handlers may not reach unless allow-listed`
        : `${host} resolves to ${address}, a ${kind} address, which http handlers may not reach unless allow-listed`,
    );
  }
}

// IPv4-mapped IPv6 forms (::ffff:127.0.0.1) match the IPv4 ranges: BlockList maps them itself.
// 6to4 (2002::/16) is refused outright: it is deprecated, and it too can embed a private address.
const REFUSED_RANGES: [Exclude<AddressKind, 'public' | 'invalid'>, string[]][] = [
  ['unspecified', ['0.0.0.0/8', '::/128']],
  ['loopback', ['127.0.0.0/8', '::1/128']],
  ['private', ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7']],
  ['link-local', ['169.254.0.0/16', 'fe80::/10']],
  ['shared', ['100.64.0.0/10']],
  ['multicast', ['224.0.0.0/4', 'ff00::/8']],
  ['reserved', ['240.0.0.0/4', '2002::/16']],
];

const REFUSED = REFUSED_RANGES.map(([kind, ranges]) => {
  const list = new net.BlockList();
  for (const range of ranges) {
    addRange(list, range);
    // NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits through a translator.
    const [address = '', prefix] = range.split('/');
    if (ipFamily(address) === 'ipv4') addRange(list, `64:ff9b::${address}/${96 + Number(prefix)}`);
  }
  return [kind, list] as const;
});

export function classifyAddress(address: string): AddressKind {
  const family = ipFamily(address);
  if (family === undefined) return 'invalid';
  return REFUSED.find(([, list]) => list.check(address, family))?.[0] ?? 'public';
}

/**
 * `allow` holds host names (`localhost`), addresses (`127.0.0.1`) and CIDR ranges
 * (`10.0.0.0/8`) that may be reached even though they are not public.
 */
export function createAddressGuard(allow: string[]): AddressGuard {
  const allowedHosts = new Set<string>();
  const allowedAddresses = new net.BlockList();
  for (const raw of allow) {
    const entry = normalizeHost(raw.trim());
    if (entry === '') continue;
    if (entry.includes('/') || ipFamily(entry) !== undefined) addRange(allowedAddresses, entry);
    else allowedHosts.add(entry);
  }

  const refusal = (host: string, address: string): AddressNotAllowedError | undefined => {
    if (allowedHosts.has(normalizeHost(host))) return undefined;
    const kind = classifyAddress(address);
    if (kind === 'public') return undefined;
    const family = ipFamily(address);
    if (family !== undefined && allowedAddresses.check(address, family)) return undefined;
    return new AddressNotAllowedError(host, address, kind);
  };

  const lookup: net.LookupFunction = (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, []);
      // Connect only to the addresses that pass; refuse the host when none does.
      const refusals = addresses.map((a) => refusal(hostname, a.address));
      const permitted = addresses.filter((_, i) => refusals[i] === undefined);
      const first = permitted[0];
      if (first === undefined) {
        return callback(refusals[0] ?? new Error(`${hostname} resolved to no address`), []);
      }
      if (options.all === true) callback(null, permitted);
      else callback(null, first.address, first.family);
    });
  };

  const connectResolved = buildConnector({ lookup });
  // Node skips `lookup` for a literal address, so those are checked here.
  const connect: buildConnector.connector = (options, callback) => {
    const error = ipFamily(options.hostname) ? refusal(options.hostname, options.hostname) : null;
    if (error) callback(error, null);
    else connectResolved(options, callback);
  };

  const agent = new Agent({ connect });
  return {
    dispatcher: agent,
    allows: (host, address) => refusal(host, address) === undefined,
    close: () => agent.destroy(),
  };
}

function ipFamily(address: string): 'ipv4' | 'ipv6' | undefined {
  const version = net.isIP(address);
  return version === 4 ? 'ipv4' : version === 6 ? 'ipv6' : undefined;
}

function normalizeHost(host: string): string {
  return host
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '');
}

function addRange(list: net.BlockList, range: string): void {
  const [address = '', prefixText] = range.split('/', 2);
  const family = ipFamily(address);
  const prefix = prefixText === undefined ? undefined : Number(prefixText);
  const maxPrefix = family === 'ipv4' ? 32 : 128;
  if (family === undefined) throw new Error(`"${range}" is not an IP address or CIDR range`);
  if (prefix === undefined) return list.addAddress(address, family);
  if (!/^\d+$/.test(prefixText ?? '') || prefix > maxPrefix) {
    throw new Error(`"${range}" has an invalid prefix length`);
  }
  list.addSubnet(address, prefix, family);
}
