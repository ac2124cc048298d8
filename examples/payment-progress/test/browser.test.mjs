#!/usr/bin/env node
// The payment-progress example end to end, in headless Chromium (playwright-core from
// examples/node_modules, the Chromium at $CHROMIUM, default /usr/bin/chromium; never downloads
// a browser):
//
//   node examples/payment-progress/test/browser.test.mjs --app http://127.0.0.1:3000 \
//       [--amqp amqp://guest:guest@127.0.0.1:5672/%2f] [--queue ws.notice] [--shots DIR]
//
// Needs app.mjs at --app and its gateway (wsgate.toml, whose allowed_origins must include
// --app's origin) consuming --queue. gateway/tests/example_payment.rs starts both.
//
// Checks:
//  1. checkout: the page connects; its socket is cut (client.dropSocket) and its reconnect held
//     back until the order has been paid on the "phone" (the provider's page, which calls the
//     app's signed callback): the page shows "paid", replayed before its rejoin (recovered);
//  2. checkout, connected: 5 orders paid on the phone; each page shows "paid"; prints the
//     callback-to-page and click-to-page latencies; a repeated callback is not pushed again;
//  3. import: 10,000 tasks; the socket is cut at 2,000 and the page reloaded at 5,000: each
//     join shows at least the value before it at once (the cache), never 0; ends at
//     10000 / 10000 and 100 %; prints the job's duration;
//  4. a notice published to RabbitMQ (notice.mjs) reaches both open pages.
// With --shots DIR saves DIR/checkout.png, DIR/import.png and both stacked in DIR/both.png
// (or failure-*.png).
//
// Exit codes: 0 passed, 1 a check failed, 2 bad arguments, 3 the run took over 150 s.

import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';

import { deadline, launchChromium, step } from '../../test-support.mjs';

const USAGE = 'node test/browser.test.mjs --app http://HOST:PORT [--amqp URL] [--queue NAME] [--shots DIR]';
const DEADLINE = 150_000;
const WAIT = 15_000;
const NOTICE = join(dirname(fileURLToPath(import.meta.url)), '..', 'notice.mjs');

let opt;
try {
  ({ values: opt } = parseArgs({
    options: {
      app: { type: 'string' },
      amqp: { type: 'string', default: 'amqp://guest:guest@127.0.0.1:5672/%2f' },
      queue: { type: 'string', default: 'ws.notice' },
      shots: { type: 'string' },
    },
  }));
  if (!opt.app || !/^https?:\/\//.test(opt.app)) throw new Error('--app http://HOST:PORT is required');
} catch (err) {
  console.error(`${err.message}\nusage: ${USAGE}`);
  process.exit(2);
}
const APP = opt.app.replace(/\/+$/, '');
deadline(DEADLINE, 'the payment-progress browser test');

/** Waits in `page` until `fn(arg)` holds; on a timeout says what, with the page's view. */
async function until(page, what, fn, arg, ms = WAIT) {
  try {
    await page.waitForFunction(fn, arg, { timeout: ms, polling: 20 });
  } catch (err) {
    const view = await page.evaluate(() => JSON.stringify({ ...window.view, events: window.view?.events?.slice(-8) })).catch(() => '?');
    throw new Error(`timed out after ${ms} ms waiting for ${what}; the page's view: ${view} (${err.message.split('\n')[0]})`);
  }
}

const view = (page) => page.evaluate(() => window.view);

/** Opens a new checkout page and waits until its socket joined and the order was checked. */
async function openCheckout(page) {
  await page.goto(`${APP}/checkout.html`);
  await until(page, 'the checkout page to connect and join its order stream (is the gateway up with wsgate.toml, and --app in its allowed_origins?)', () => window.view?.checked >= 1);
  return view(page);
}

/** The phone: opens the QR code's link, the provider's page, and presses Pay; returns when Pay was pressed. */
async function payOnPhone(context, checkout) {
  const href = await checkout.$eval('#qr', (a) => a.href);
  const phone = await context.newPage();
  try {
    await phone.goto(href);
    const pressed = Date.now();
    await phone.click('#pay');
    await phone.waitForFunction(() => document.getElementById('result').textContent.startsWith('Paid'), null, { timeout: WAIT });
    return pressed;
  } finally {
    await phone.close();
  }
}

async function shot(page, name) {
  if (!opt.shots || !page) return;
  mkdirSync(opt.shots, { recursive: true });
  await page.screenshot({ path: join(opt.shots, name) }).catch((e) => console.error(`# screenshot ${name}: ${e.message}`));
}

let browser;
let checkout;
let imports;
const figures = {};
try {
  browser = await launchChromium();
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  const pageErrors = [];
  context.on('weberror', (e) => pageErrors.push(String(e.error())));
  checkout = await context.newPage();
  checkout.on('console', (m) => m.type() === 'error' && console.error('# checkout console:', m.text()));

  // ---- 1. the socket is down when the payment comes: recovered on the reconnect ----
  await step('checkout: paid while the socket is cut, recovered on the reconnect', async () => {
    const { order } = await openCheckout(checkout);
    // Hold the reconnect (its token request) until the payment has been pushed.
    let release;
    const held = new Promise((resolve) => (release = resolve));
    let tokenAsked = false;
    await checkout.route(`**/api/orders/${order}`, async (route) => {
      tokenAsked = true;
      await held;
      await route.continue();
    });
    await checkout.evaluate(() => window.client.dropSocket('test: network cut'));
    await payOnPhone(context, checkout);
    const during = await view(checkout);
    if (during.state === 'connected' || !tokenAsked) {
      throw new Error(`the page was not reconnecting while the order was paid (state ${during.state}, token asked: ${tokenAsked})`);
    }
    if (during.status === 'paid') throw new Error('the page showed "paid" while its socket was cut');
    release();
    await until(checkout, '"paid" after the reconnect', () => window.view.status === 'paid');
    await checkout.unroute(`**/api/orders/${order}`);
    const { events } = await view(checkout);
    const paid = events.indexOf('publication:paid');
    const rejoin = events.indexOf(`joined:user:order-${order}:true`);
    if (paid < 0 || rejoin < paid) {
      throw new Error(`expected the "paid" publication replayed before a recovered rejoin; events: ${events.join(', ')}`);
    }
    const shown = await checkout.textContent('#status');
    if (shown !== 'paid') throw new Error(`#status shows ${JSON.stringify(shown)}`);
  });

  // ---- 2. connected: how long from the callback to the page ----
  await step('checkout: 5 orders paid while connected, each page shows "paid"', async () => {
    const callbackToPage = [];
    const clickToPage = [];
    for (let i = 0; i < 5; i++) {
      await openCheckout(checkout);
      const pressed = await payOnPhone(context, checkout);
      await until(checkout, '"paid"', () => window.view.status === 'paid');
      clickToPage.push(Date.now() - pressed);
      callbackToPage.push((await view(checkout)).latencyMs);
    }
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    figures.callbackToPage = callbackToPage;
    figures.clickToPage = clickToPage;
    console.log(`# callback -> page: ${callbackToPage.join(', ')} ms (median ${median(callbackToPage)} ms)`);
    console.log(`# Pay pressed on the phone -> page shows paid: ${clickToPage.join(', ')} ms (median ${median(clickToPage)} ms)`);
    if (callbackToPage.some((ms) => !(ms >= 0 && ms < 1000))) throw new Error(`a page took a second or more: ${callbackToPage}`);
  });

  await step('checkout: a repeated callback is answered OK and not pushed again', async () => {
    const before = (await view(checkout)).events.filter((e) => e === 'publication:paid').length;
    const { order } = await view(checkout);
    const res = await fetch(`${APP}/provider/pay?order=${order}`, { method: 'POST' });
    const body = await res.json();
    if (!res.ok || body.callback?.duplicate !== true) throw new Error(`the second payment answered ${res.status} ${JSON.stringify(body)}`);
    // A second push would be a new publication of the order's stream: a reconnect recovers
    // everything after the page's position, so once it has rejoined, anything pushed is here.
    const eventsBefore = await checkout.evaluate(() => {
      window.client.dropSocket('test: flush');
      return window.view.events.length;
    });
    await until(checkout, 'the recovered rejoin after the repeated callback', (n) => window.view.checked >= 2 && window.view.events.length > n, eventsBefore);
    const { events } = await view(checkout);
    const lastJoin = events.filter((e) => e.startsWith('joined:')).pop();
    if (!lastJoin.endsWith(':true')) throw new Error(`the rejoin did not recover: ${lastJoin}`);
    const now = events.filter((e) => e === 'publication:paid').length;
    if (now !== before) throw new Error(`"paid" was pushed again: ${before} publications before, ${now} after`);
  });

  // ---- 3. import: 10,000 tasks, a cut and a reload on the way ----
  imports = await context.newPage();
  imports.on('console', (m) => m.type() === 'error' && console.error('# import console:', m.text()));
  const job = await step('import: the job starts and the page follows it', async () => {
    await imports.goto(`${APP}/import.html`);
    await imports.click('#start');
    await until(imports, 'the first progress', () => window.view.done >= 1);
    return (await view(imports)).job;
  });

  await step('import: the socket cut at 2,000: the rejoin shows the latest value at once', async () => {
    await until(imports, '2,000 tasks done', () => window.view.done >= 2000, null, 60_000);
    const atCut = await imports.evaluate(() => {
      window.client.dropSocket('test: network cut');
      return window.view.done;
    });
    await until(imports, 'the rejoin', () => window.view.doneAtJoin.length >= 2);
    const { doneAtJoin, events } = await view(imports);
    console.log(`# cut at ${atCut}, rejoined showing ${doneAtJoin[1]}; the client's events: ${events.slice(-4).join(', ')}`);
    if (!(doneAtJoin[1] >= atCut)) throw new Error(`the bar showed ${doneAtJoin[1]} when it rejoined, below ${atCut} before the cut`);
    // The rejoin missed updates, but the gateway gave the latest (joined says latest: true).
    const gaps = events.filter((e) => e.startsWith('unrecovered'));
    if (gaps.length) throw new Error(`the client reported a gap although the cache gave the latest value: ${gaps.join(', ')}`);
  });

  await step('import: the page reloaded at 5,000 shows the current value at once (the cache), not 0', async () => {
    await until(imports, '5,000 tasks done', () => window.view.done >= 5000, null, 60_000);
    const before = (await view(imports)).done;
    await imports.reload();
    await until(imports, 'the join after the reload', () => window.view?.doneAtJoin?.length >= 1);
    const { doneAtJoin } = await view(imports);
    if (!(doneAtJoin[0] >= before)) throw new Error(`after the reload the bar showed ${doneAtJoin[0]} when it joined, expected at least ${before}`);
    console.log(`# before the reload: ${before}; at the join after it: ${doneAtJoin[0]}`);
  });

  await step('import: the page reaches 10000 / 10000 and 100 %', async () => {
    await until(imports, '10000 / 10000', () => window.view.done === 10000, null, 90_000);
    const count = await imports.textContent('#count');
    const percent = await imports.textContent('#percent');
    if (count !== '10000 / 10000' || percent !== '100 %') throw new Error(`the page shows ${count}, ${percent}`);
    const res = await fetch(`${APP}/api/imports/${job}`);
    const state = await res.json();
    if (state.state !== 'done') throw new Error(`the job is ${state.state}: ${state.error}`);
    figures.importMs = state.elapsed_ms;
    console.log(`# the job's 10,000 tasks and progress pushes took ${(state.elapsed_ms / 1000).toFixed(1)} s (${Math.round(10_000_000 / state.elapsed_ms)} pushes/s)`);
  });

  // ---- 4. a notice through RabbitMQ reaches every open page ----
  await step(`a notice published to RabbitMQ ${opt.queue} reaches both open pages`, async () => {
    const text = `maintenance at 22:00 (test ${process.pid})`;
    const started = Date.now();
    await promisify(execFile)(process.execPath, [NOTICE, text, '--amqp', opt.amqp, '--queue', opt.queue]);
    for (const page of [checkout, imports]) {
      await until(page, `the notice ${JSON.stringify(text)}`, (t) => window.view.notices.includes(t), text);
    }
    console.log(`# notice.mjs started -> on both pages: ${Date.now() - started} ms`);
  });

  if (pageErrors.length) throw new Error(`the pages threw: ${pageErrors.join('; ')}`);
  await shot(checkout, 'checkout.png');
  await shot(imports, 'import.png');
  if (opt.shots) {
    // Both pages in one picture (the README's screenshot.png): their top halves, stacked.
    const top = (height) => ({ clip: { x: 0, y: 0, width: 1000, height } });
    const [a, b] = await Promise.all([checkout.screenshot(top(345)), imports.screenshot(top(370))]);
    const both = await context.newPage();
    await both.setViewportSize({ width: 1000, height: 715 });
    await both.setContent(`<body style="margin:0">${[a, b].map((png) => `<img style="display:block" src="data:image/png;base64,${png.toString('base64')}">`).join('')}</body>`);
    await both.screenshot({ path: join(opt.shots, 'both.png') });
  }
  console.log(`FIGURES ${JSON.stringify(figures)}`);
  console.log('PASSED');
} catch (err) {
  console.error(`FAILED - ${err.message}`);
  await shot(checkout, 'failure-checkout.png');
  await shot(imports, 'failure-import.png');
  process.exitCode = 1;
} finally {
  await browser?.close().catch(() => {});
}
