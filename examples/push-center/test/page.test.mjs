// The push center's pages in Debian's Chromium (playwright-core; never downloads a browser),
// against a running system: the gateway with the example's config, `node admin.mjs`, Redis.
//
//   node test/page.test.mjs --app http://127.0.0.1:3001 [--key push:center] [--redis 127.0.0.1:6379] [--shots DIR]
//
// Opens the client page (/) in one tab and the admin form (/admin) in another; submits the
// form as a user does (type, click) and runs `php lpush.php` with the same list key; the client
// page lists both messages, once each. With --shots DIR, saves DIR/push-center.png (or
// push-center-failure.png).
//
// Exit codes: 0 passed, 1 a check failed, 2 bad arguments, 3 the run took over 60 s.

import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { deadline, launchChromium, step } from '../../test-support.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const USAGE = 'usage: node test/page.test.mjs --app http://HOST:PORT [--key push:center] [--redis HOST:PORT] [--shots DIR]';

const args = { key: 'push:center', redis: '127.0.0.1:6379' };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const m = /^--(app|key|redis|shots)$/.exec(argv[i]);
  if (!m || argv[i + 1] === undefined) {
    console.error(`bad argument ${JSON.stringify(argv[i])}\n${USAGE}`);
    process.exit(2);
  }
  args[m[1]] = argv[++i];
}
if (!args.app) {
  console.error(`--app is required\n${USAGE}`);
  process.exit(2);
}
deadline(60_000, 'page.test.mjs');

function lpush(text) {
  return new Promise((resolve, reject) => {
    const script = join(HERE, '..', 'lpush.php');
    execFile('php', [script, text, '--title', 'From PHP', '--key', args.key, '--redis', args.redis], (err, stdout, stderr) => {
      if (err) return reject(new Error(`php lpush.php failed: ${stderr || err.message}`));
      const m = /^pushed (\S+)/.exec(stdout);
      if (!m) return reject(new Error(`lpush.php did not say what it pushed: ${stdout}`));
      resolve(m[1]);
    });
  });
}

let browser;
let client;
let failed = null;
try {
  browser = await launchChromium();
  client = await browser.newPage({ viewport: { width: 800, height: 520 } });
  const errors = [];
  client.on('pageerror', (err) => errors.push(err.message));

  await step('the client page connects to the gateway', async () => {
    await client.goto(`${args.app}/`);
    await client.waitForFunction(() => document.body.dataset.state === 'connected', null, { timeout: 15_000 });
  });

  const formId = await step('the admin form is submitted in a second tab', async () => {
    const admin = await browser.newPage();
    await admin.goto(`${args.app}/admin`);
    const id = await admin.inputValue('input[name=id]');
    await admin.fill('#title', 'From the form');
    await admin.fill('#text', 'Maintenance tonight at 22:00 ✓');
    await Promise.all([admin.waitForURL(`${args.app}/admin`), admin.click('#send')]);
    const delivered = await admin.getAttribute('#result', 'data-delivered');
    if (delivered === null) throw new Error(`the form's answer: ${await admin.textContent('#result')}`);
    if (Number(delivered) < 1) throw new Error(`the gateway delivered it to ${delivered} connections; the client page is one`);
    await admin.close();
    return id;
  });

  const pushId = await step('php lpush.php pushes one to the list', () => lpush('Pushed from PHP: 中文 & "quotes"'));

  await step('the client page lists both, once each', async () => {
    await client.waitForFunction((ids) => ids.every((id) => document.querySelector(`li[data-id="${id}"]`)), [formId, pushId], { timeout: 10_000 });
    const shown = await client.$$eval('li', (items) => items.map((li) => ({ id: li.dataset.id, text: li.querySelector('.text').textContent })));
    const want = {
      [formId]: 'Maintenance tonight at 22:00 ✓',
      [pushId]: 'Pushed from PHP: 中文 & "quotes"',
    };
    for (const [id, text] of Object.entries(want)) {
      const rows = shown.filter((s) => s.id === id);
      if (rows.length !== 1 || rows[0].text !== text) throw new Error(`${id}: expected once with ${JSON.stringify(text)}, got ${JSON.stringify(rows)}`);
    }
    const duplicates = await client.evaluate(() => document.body.dataset.duplicates);
    if (duplicates) throw new Error(`the page saw ${duplicates} duplicate(s)`);
    if (errors.length) throw new Error(`page errors: ${errors.join('; ')}`);
  });
} catch (err) {
  failed = err;
}
if (args.shots && client) {
  mkdirSync(args.shots, { recursive: true });
  await client.screenshot({ path: join(args.shots, failed ? 'push-center-failure.png' : 'push-center.png') }).catch(() => {});
}
if (browser) await browser.close();
if (failed) {
  console.error(`FAILED - ${failed.message}`);
  process.exit(1);
}
console.log('PASSED - the client page showed the form message and the LPUSHed one, once each');
