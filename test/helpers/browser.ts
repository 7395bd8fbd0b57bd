import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';

/**
 * Browser tests drive Debian's chromium through playwright-core when the machine has it (no
 * browser download: the machine's package is the browser). Without it they use the Chromium
 * that `@sparticuz/chromium` (a dev dependency) carries inside its npm package, unpacked to the
 * temporary folder on first use, so `npm test` passes on a machine where nothing was installed
 * by hand. They never skip.
 */
export async function launchChromium(): Promise<Browser> {
  const { executablePath, env } = await findChromium();
  return chromium.launch({ executablePath, env, args: BROWSER_ARGS });
}

/** Without the networking flags, chromium stalls on a closed network. */
const BROWSER_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

interface FoundChromium {
  executablePath: string;
  env?: NodeJS.ProcessEnv;
}

/** Found once per process: two suites unpacking the packaged browser at once would race. */
let found: Promise<FoundChromium> | undefined;

function findChromium(): Promise<FoundChromium> {
  found ??= (async () => {
    try {
      return { executablePath: execFileSync('which', ['chromium'], { encoding: 'utf8' }).trim() };
    } catch {
      const { default: packaged } = await import('@sparticuz/chromium');
      // The packaged build takes its default locale from LANG, and this machine's C.UTF-8
      // becomes "en-US@posix", which its own Intl then rejects (every toLocaleString throws).
      return {
        executablePath: await packaged.executablePath(),
        env: { ...process.env, LANG: 'en_US.UTF-8' },
      };
    }
  })();
  return found;
}

/** Where tests write screenshots (gitignored). */
export const ARTIFACTS_DIR = path.resolve('test-artifacts/console');

export function artifactPath(name: string): string {
  fs.mkdirSync(ARTIFACTS_DIR, { recursive: true });
  return path.join(ARTIFACTS_DIR, name);
}
