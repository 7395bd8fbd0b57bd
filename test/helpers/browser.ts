import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserServer } from 'playwright-core';

/**
 * Browser tests drive Debian's chromium through playwright-core when the machine has it (no
 * browser download: the machine's package is the browser). Without it they use the Chromium
 * that `@sparticuz/chromium` (a dev dependency) carries inside its npm package, unpacked to the
 * temporary folder on first use, so `npm test` passes on a machine where nothing was installed
 * by hand. They never skip.
 */
export async function launchChromium(): Promise<LaunchedChromium> {
  const { executablePath, env } = await findChromium();
  // Launched as a server (rather than chromium.launch) for the process handle: closing needs a
  // way to kill a browser that does not exit.
  const server = await chromium.launchServer({ executablePath, env, args: BROWSER_ARGS });
  const browser = await chromium.connect(server.wsEndpoint());
  return { browser, close: () => closeWithin(CLOSE_WAIT_MS, browser, server) };
}

export interface LaunchedChromium {
  browser: Browser;
  /** Closes the browser, killing its processes if they have not exited within a bound. */
  close(): Promise<void>;
}

/**
 * Chromium here at times never exits when asked: Playwright's close then waits for it without
 * end, and the test file, every test passed, outlives its timeout. Closing waits this long,
 * then kills the browser's process group, as Playwright itself does when a graceful close fails.
 */
const CLOSE_WAIT_MS = 10_000;

async function closeWithin(ms: number, browser: Browser, server: BrowserServer): Promise<void> {
  const closed = (async () => {
    await browser.close();
    await server.close();
  })().then(
    () => true,
    () => false,
  );
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const inTime = await Promise.race([closed, waited]);
  clearTimeout(timer);
  if (inTime) return;
  process.stderr.write(`chromium did not close within ${ms} ms; killing it\n`);
  await server.kill();
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
