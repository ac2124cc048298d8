// What the example systems' test scripts (examples/*/test/) share: an overall deadline, named
// steps, waiting on a condition, and Debian's Chromium through playwright-core (the browser at
// $CHROMIUM, default /usr/bin/chromium; a browser is never downloaded). The examples' own apps
// do not use it: each example's app stands alone, to be read and copied on its own.
//
// Exit codes used with it: 1 a check failed, 3 the run took too long.

import { existsSync } from 'node:fs';

/** Exits with code 3 if the run is not over after `ms`. */
export function deadline(ms, what) {
  setTimeout(() => {
    console.error(`FAILED - ${what} did not finish within ${ms / 1000} s (the last "ok" line above is the last step that passed)`);
    process.exit(3);
  }, ms).unref();
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `fn` until it returns a truthy value, which it resolves; fails naming `what` after `ms`. */
export async function waitFor(what, fn, ms = 10_000) {
  const until = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Runs one named step: prints `ok - <what> (<ms> ms)`, or fails with its name in front. */
export async function step(what, fn) {
  const started = Date.now();
  try {
    const result = await fn();
    console.log(`ok - ${what} (${Date.now() - started} ms)`);
    return result;
  } catch (err) {
    err.message = `${what}: ${err.message}`;
    throw err;
  }
}

/** Headless Chromium; exits with code 1 saying how to install it when it is not there. */
export async function launchChromium() {
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  if (!existsSync(executablePath)) {
    console.error(`FAILED - no Chromium at ${executablePath}: apt-get install chromium, or set CHROMIUM`);
    process.exit(1);
  }
  // Imported here, so scripts without a browser do not need playwright-core installed.
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
