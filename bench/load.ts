import autocannon from 'autocannon';
import type { LoadOptions } from './setup.js';

/**
 * The load generator, run as its own process by the bench (`node --import tsx bench/load.ts
 * '<json LoadOptions>'`): an unmeasured warm-up, then the measured run, whose autocannon
 * result is printed to stdout as JSON.
 */

const raw = process.argv[2];
if (raw === undefined) {
  process.stderr.write("usage: node --import tsx bench/load.ts '<json options>'\n");
  process.exit(2);
}
const options = JSON.parse(raw) as LoadOptions;

function run(durationS: number): Promise<autocannon.Result> {
  return autocannon({
    url: options.url,
    connections: options.connections,
    duration: durationS,
    method: options.method,
    headers: options.headers,
    body: options.body,
    requests: options.paths.map((path) => ({ path })),
  });
}

if (options.warmupS > 0) await run(options.warmupS);
const result = await run(options.durationS);
process.stdout.write(`${JSON.stringify(result)}\n`);
