// The chat page in headless Chromium, through the example's front (balancer.mjs or nginx) and
// two gateways with chat-rooms linked to both (examples/tests/chat_cluster.rs starts them all):
//
//   node examples/chat-cluster/test/browser.test.mjs --url http://127.0.0.1:8000/ [--shots DIR]
//
// Three pages log in as ann, ben and cat (so ann and ben land on different gateways, as the
// balancer takes turns), ann and ben join #lobby, ann says something there and whispers to ben:
// ben sees both, cat sees neither. With --shots DIR, saves DIR/chat-cluster.png.
// Uses playwright-core with the Chromium at $CHROMIUM (default /usr/bin/chromium); never
// downloads a browser. Exit codes: 0 passed, 1 a check failed, 2 bad arguments, 3 over 60 s.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { deadline, launchChromium } from '../../test-support.mjs';

const usage = 'node test/browser.test.mjs --url http://HOST:PORT/ [--shots DIR]';
const args = {};
for (let i = 2; i < process.argv.length; i += 2) {
  const key = process.argv[i].replace(/^--/, '');
  if (!['url', 'shots'].includes(key) || process.argv[i + 1] === undefined) {
    console.error(`unexpected argument ${process.argv[i]}\nusage: ${usage}`);
    process.exit(2);
  }
  args[key] = process.argv[i + 1];
}
if (!args.url) {
  console.error(`--url is required\nusage: ${usage}`);
  process.exit(2);
}
deadline(60_000, 'the chat page test');

const browser = await launchChromium();
let failed = false;
try {
  const context = await browser.newContext({ viewport: { width: 900, height: 420 } });
  const open = async (user) => {
    const page = await context.newPage();
    page.on('pageerror', (e) => console.error(`${user}'s page: ${e.message}`));
    await page.goto(args.url);
    await page.waitForFunction(() => document.getElementById('status').textContent === 'connected');
    await page.fill('#user', user);
    await page.click('#login');
    await page.waitForFunction((u) => window.chat.gateway && document.getElementById('status').textContent.startsWith(u), user);
    const gateway = await page.evaluate(() => window.chat.gateway);
    console.log(`${user} is on gateway ${gateway}`);
    return { page, gateway };
  };
  const lines = (page) => page.$$eval('#log li', (items) => items.map((li) => li.textContent));
  const ann = await open('ann');
  const ben = await open('ben');
  const cat = await open('cat');
  if (ann.gateway === ben.gateway) throw new Error(`ann and ben are both on ${ann.gateway}: the front did not take turns`);

  for (const p of [ann.page, ben.page]) {
    await p.fill('#room', 'lobby');
    await p.click('#join');
  }
  await ann.page.waitForFunction(() => [...document.querySelectorAll('#log li')].some((li) => li.textContent === 'ben joined #lobby'));
  await ann.page.fill('#text', 'hello lobby');
  await ann.page.click('#say');
  await ann.page.fill('#to', 'ben');
  await ann.page.fill('#text', 'just for you');
  await ann.page.click('#whisper');
  await ben.page.waitForFunction(() => {
    const text = [...document.querySelectorAll('#log li')].map((li) => li.textContent);
    return text.includes('#lobby ann: hello lobby') && text.includes('ann to you: just for you');
  });
  await ann.page.waitForFunction(() => [...document.querySelectorAll('#log li')].some((li) => li.textContent.startsWith('delivered to ben')));
  console.log('ben saw the room message and the whisper from the other gateway');

  // cat is told something after all that; when it shows, nothing before it may be ann's.
  await cat.page.fill('#to', 'cat');
  await cat.page.fill('#text', 'note to self');
  await cat.page.click('#whisper');
  await cat.page.waitForFunction(() => [...document.querySelectorAll('#log li')].some((li) => li.textContent === 'cat to you: note to self'));
  const catSaw = await lines(cat.page);
  if (catSaw.some((l) => l.includes('ann'))) throw new Error(`cat saw ann's messages: ${JSON.stringify(catSaw)}`);
  console.log('cat saw only its own');

  if (args.shots) {
    mkdirSync(args.shots, { recursive: true });
    await ben.page.screenshot({ path: join(args.shots, 'chat-cluster.png') });
  }
  console.log('PASSED');
} catch (e) {
  failed = true;
  console.error(`FAILED - ${e.message}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
