// The web page in Debian's Chromium (playwright-core; never downloads a browser), against a
// running system: the gateway with this example's wsgate.toml, `node login.mjs`, Redis.
//
//   node test/web.test.mjs --login http://127.0.0.1:3002 --api http://127.0.0.1:8082 --prefix UNIQUE [--redis 127.0.0.1:6379] [--shots DIR]
//
// Two browser contexts (two people, nothing shared) open the page and log in as PREFIX-a and
// PREFIX-b through its form; `php publish.php` to A shows on A's page only, B's own on B's
// page only (B's list holds exactly its own: on one connection A's would have come first).
// With --shots DIR, saves DIR/miniprogram-web-a.png and -b.png (or -failure.png).
//
// Exit codes: 0 passed, 1 a check failed, 2 bad arguments, 3 the run took over 60 s.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { launchChromium } from '../../test-support.mjs';
import { deadline, online, parseArgs, publish, step, userId } from './harness.mjs';

const USAGE = 'node test/web.test.mjs --login http://HOST:PORT --api http://HOST:PORT --prefix UNIQUE [--redis HOST:PORT] [--shots DIR]';
const args = parseArgs(USAGE, ['login', 'api', 'prefix'], { redis: '127.0.0.1:6379' });
deadline(60_000, 'web.test.mjs');

/** The texts listed on a page, newest first. */
const listed = (page) => page.$$eval('li .text', (items) => items.map((i) => i.textContent));

let browser;
const pages = {};
let failed = null;
try {
  browser = await launchChromium();
  const a = userId(args.prefix, 'a');
  const b = userId(args.prefix, 'b');
  const errors = [];

  await step(`${a} and ${b} log in on the page, each in a browser of their own, and connect`, async () => {
    for (const [key, user] of [
      ['a', a],
      ['b', b],
    ]) {
      const context = await browser.newContext({ viewport: { width: 700, height: 420 } });
      const page = await context.newPage();
      page.on('pageerror', (err) => errors.push(`${key}: ${err.message}`));
      await page.goto(`${args.login}/`);
      await page.fill('#user', user);
      await page.click('#go');
      await page.waitForFunction((u) => document.body.dataset.user === u && document.body.dataset.state === 'connected', user, { timeout: 15_000 });
      await online(args.api, user);
      pages[key] = page;
    }
  });

  const forA = `for ${a} only ✓`;
  const forB = `for ${b}: 你好`;
  await step(`publish.php to ${a}, then to ${b}: each page shows only its own`, async () => {
    await publish(a, forA, args.redis);
    await pages.a.waitForFunction((t) => [...document.querySelectorAll('li .text')].some((li) => li.textContent === t), forA, { timeout: 10_000 });
    await publish(b, forB, args.redis);
    await pages.b.waitForFunction((t) => [...document.querySelectorAll('li .text')].some((li) => li.textContent === t), forB, { timeout: 10_000 });
    const onA = await listed(pages.a);
    const onB = await listed(pages.b);
    if (JSON.stringify(onA) !== JSON.stringify([forA])) throw new Error(`A's page lists ${JSON.stringify(onA)}`);
    if (JSON.stringify(onB) !== JSON.stringify([forB])) throw new Error(`B's page lists ${JSON.stringify(onB)}`);
    if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
  });
} catch (err) {
  failed = err;
}
if (args.shots) {
  mkdirSync(args.shots, { recursive: true });
  for (const [key, page] of Object.entries(pages)) {
    await page.screenshot({ path: join(args.shots, `miniprogram-web-${key}${failed ? '-failure' : ''}.png`) }).catch(() => {});
  }
}
if (browser) await browser.close();
if (failed) {
  console.error(`FAILED - ${failed.message}`);
  process.exit(1);
}
console.log('PASSED - the web page: each user saw only their own message');
