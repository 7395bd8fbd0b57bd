#!/usr/bin/env node
// The package's `pie` command (`npx pie <command>` from a checkout after `npm ci`). It runs the
// TypeScript CLI in this very process through tsx's loader: nothing to build first, and no
// process in between, so a SIGTERM sent to `node bin/pie.mjs serve` reaches PIE itself (npx, for
// its part, does not pass SIGTERM on; Ctrl-C reaches PIE either way).
import process from 'node:process';
import { register } from 'tsx/esm/api';

// Node processes this one forks with its own options (the embedded database's first start)
// run TypeScript too: as if it had been started as `node --import tsx`.
process.execArgv.push('--import', import.meta.resolve('tsx'));
register();
await import('../src/cli/main.ts');
