// End to end against a real gateway, in headless Chromium, with the plain-script build
// (dist/wsgate.js) and the browser adapter (the page's own WebSocket).
//
//   node test/browser.test.mjs --ws ws://127.0.0.1:PORT/ws --api http://127.0.0.1:PORT2 --secret JWTSECRET [--shots DIR] [--api-key KEY]
//
// The gateway must run with --jwt-secret JWTSECRET, the stream rules
//   users keep-* history=1000 age=10m
//   users trim-* history=3 age=10m
// and accept any Origin (the default: the page is about:blank). Uses playwright-core with the
// Chromium at $CHROMIUM (default /usr/bin/chromium); never downloads a browser.
//
// Checks: 200 numbered messages to user keep-<random> arrive in the page exactly once each, in
// order, while the socket is cut twice by the gateway (force-offline 4000) and twice by the
// page (client.dropSocket()), every reconnect recovering; then user trim-<random>, after missing
// more than its history keeps, gets an `unrecovered` event with gap "trimmed".
// With --shots DIR, saves DIR/js-client-browser.png (or js-client-browser-failure.png).
//
// Exit codes: 0 passed, 1 a check failed, 2 bad arguments, 3 the run took over 90 s.

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

import { build } from '../build.mjs';
import {
  Api,
  checkExactlyOnceInOrder,
  cutPoints,
  deadline,
  makeJwt,
  parseArgs,
  sleep,
  step,
  uniqueUser,
} from './e2e-common.mjs';

const USAGE =
  'node test/browser.test.mjs --ws ws://HOST:PORT/ws --api http://HOST:PORT --secret JWTSECRET [--shots DIR] [--api-key KEY]';
const args = parseArgs(USAGE);
deadline(90_000, 'browser.test.mjs');
const api = new Api(args.api, args.apiKey);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const N = 200;
const WAIT = 15_000;

if (!existsSync(CHROMIUM)) {
  console.error(`FAILED - no Chromium at ${CHROMIUM}: install it (apt-get install chromium) or set CHROMIUM to its path`);
  process.exit(1);
}

// Runs in the page: one recorded client per user, in window.clients[key].
const PAGE_HELPERS = `
window.clients = {};
window.startClient = function (key, url, token) {
  var rec = { got: [], joined: [], unrecovered: [], states: [], errors: [] };
  var client = new WsgateClient(url, { token: token, transport: WsgateClient.adapters.browser() });
  rec.client = client;
  client.on('publication', function (e) { rec.got.push(e.data); render(); });
  client.on('message', function (e) { rec.errors.push('unexpected message outside the stream: ' + e.data); });
  client.on('joined', function (e) { rec.joined.push(e); render(); });
  client.on('unrecovered', function (e) { rec.unrecovered.push(e); render(); });
  client.on('state', function (e) { rec.states.push(e); render(); });
  client.on('error', function (e) { rec.errors.push(e.kind + ': ' + e.message); render(); });
  window.clients[key] = rec;
  client.connect();
};
window.view = function (key) {
  var rec = window.clients[key];
  return {
    got: rec.got.length,
    joined: rec.joined.length,
    state: rec.client.state,
    unrecovered: rec.unrecovered,
    errors: rec.errors,
  };
};
function render() {
  var rows = Object.keys(window.clients).map(function (key) {
    var rec = window.clients[key];
    var last = rec.states[rec.states.length - 1] || {};
    return '<tr><td>' + key + '</td><td>' + last.state + '</td><td>' + rec.got.length + '</td><td>' + (rec.got[rec.got.length - 1] || '') +
      '</td><td>' + rec.joined.map(function (j) { return j.recovered === undefined ? 'fresh' : j.recovered ? 'recovered' : 'gap:' + j.gap; }).join(' ') +
      '</td><td>' + rec.unrecovered.map(function (u) { return u.stream + ' (' + u.gap + ')'; }).join(' ') + '</td></tr>';
  });
  document.getElementById('rows').innerHTML = rows.join('');
}
`;

const HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>wsgate-client browser test</title>
<style>body{font:14px system-ui,sans-serif;margin:24px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style>
</head><body>
<h1>wsgate-client in Chromium</h1>
<table><thead><tr><th>client</th><th>state</th><th>received</th><th>last</th><th>joins</th><th>unrecovered</th></tr></thead><tbody id="rows"></tbody></table>
</body></html>`;

let browser;
let page;
let failed = null;
const summary = {};
try {
  const dist = await step('build dist/wsgate.js', () => build().script);

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage({ viewport: { width: 1000, height: 260 } });
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => m.type() === 'error' && console.error('page console:', m.text()));

  await step('the page loads the plain-script build', async () => {
    await page.setContent(HTML);
    await page.addScriptTag({ path: dist });
    await page.addScriptTag({ content: PAGE_HELPERS });
    const ok = await page.evaluate(() => typeof WsgateClient === 'function' && typeof WsgateClient.adapters.browser === 'function');
    if (!ok) throw new Error('window.WsgateClient or WsgateClient.adapters.browser is missing');
  });

  const view = (key) => page.evaluate((k) => window.view(k), key);
  const waitPage = (what, fn, arg, ms = WAIT) =>
    page.waitForFunction(fn, arg, { timeout: ms, polling: 20 }).catch(async (err) => {
      const states = await page.evaluate((k) => window.clients[k] && window.clients[k].states.slice(-2), arg && arg.key).catch(() => null);
      throw new Error(`timed out waiting for ${what}${states ? `; last states ${JSON.stringify(states)}` : ''} (${err.message.split('\n')[0]})`);
    });

  // ---- keep-*: recovery across cuts ----
  const keep = uniqueUser('keep');
  const keepStream = `user:${keep}`;
  await step(`${keep} connects from the page and joins ${keepStream}`, async () => {
    await page.evaluate(([url, token]) => window.startClient('keep', url, token), [args.ws, makeJwt(args.secret, keep)]);
    await waitPage(`the first joined (is the gateway using --jwt-secret and "users keep-* history=1000 age=10m"?)`, ({ key }) => window.clients[key].joined.length >= 1, { key: 'keep' });
    const first = await page.evaluate(() => {
      const rec = window.clients.keep;
      return { joined: rec.joined[0], connected: rec.states.find((s) => s.state === 'connected') };
    });
    if (first.joined.stream !== keepStream) throw new Error(`joined ${first.joined.stream}, expected ${keepStream}`);
    if (first.connected.protocol !== 'wsgate.stream.v1') throw new Error(`the gateway selected ${JSON.stringify(first.connected.protocol)}, not wsgate.stream.v1`);
  });

  const cuts = cutPoints(N, 4);
  const kinds = ['server', 'page', 'server', 'page'];
  await step(`publish ${N} messages, cutting at ${cuts.join(', ')} (${kinds.join(', ')})`, async () => {
    let joinedBefore = 1;
    for (let n = 1; n <= N; n++) {
      const at = cuts.indexOf(n);
      if (at >= 0) {
        await waitPage(`the reconnect before cut ${at + 1}`, ({ key, joined }) => {
          const rec = window.clients[key];
          return rec.joined.length >= joined && rec.client.state === 'connected';
        }, { key: 'keep', joined: joinedBefore });
        // Counted before the cut: the reconnect may be done by the time the cut returns.
        const joinedNow = (await view('keep')).joined;
        if (kinds[at] === 'server') await api.forceOffline(keep, 4000, 'test cut');
        else await page.evaluate(() => window.clients.keep.client.dropSocket('test: network changed'));
        joinedBefore = joinedNow + 1;
      }
      await api.sendToUser(keep, String(n));
      await sleep(5);
    }
  });

  await step(`the page received "1".."${N}" exactly once each, in order, every reconnect recovered`, async () => {
    await waitPage(`${N} messages`, ({ key, n }) => window.clients[key].got.length >= n, { key: 'keep', n: N }, 30_000);
    await sleep(300); // a duplicate would arrive now
    const rec = await page.evaluate(() => {
      const r = window.clients.keep;
      return { got: r.got, joined: r.joined, unrecovered: r.unrecovered, errors: r.errors, closes: r.states.filter((s) => s.state === 'disconnected').map((s) => s.code) };
    });
    checkExactlyOnceInOrder(rec.got, N);
    const reconnects = rec.joined.slice(1);
    if (reconnects.length < cuts.length) throw new Error(`expected ${cuts.length} reconnects, saw ${reconnects.length} joined events after the first`);
    const bad = reconnects.filter((j) => j.recovered !== true);
    if (bad.length) throw new Error(`reconnects that did not recover: ${JSON.stringify(bad)}`);
    if (rec.unrecovered.length) throw new Error(`unrecovered events: ${JSON.stringify(rec.unrecovered)}`);
    if (rec.errors.length) throw new Error(`the client reported: ${rec.errors.join('; ')}`);
    summary.keep = { user: keep, received: rec.got.length, reconnects: reconnects.length, closeCodes: rec.closes };
  });

  // ---- trim-*: an unrecoverable gap is reported ----
  const trim = uniqueUser('trim');
  const trimStream = `user:${trim}`;
  await step(`${trim} receives 3 messages, disconnects, misses 10, reconnects: unrecovered (trimmed)`, async () => {
    await page.evaluate(([url, token]) => window.startClient('trim', url, token), [args.ws, makeJwt(args.secret, trim)]);
    await waitPage(`the joined for ${trimStream} (is "users trim-* history=3 age=10m" configured?)`, ({ key }) => window.clients[key].joined.length >= 1, { key: 'trim' });
    for (let n = 1; n <= 3; n++) await api.sendToUser(trim, String(n));
    await waitPage('3 messages', ({ key }) => window.clients[key].got.length >= 3, { key: 'trim' });
    await page.evaluate(() => window.clients.trim.client.disconnect());
    await sleep(200); // let the gateway see the close
    for (let n = 4; n <= 13; n++) await api.sendToUser(trim, String(n));
    await page.evaluate(() => window.clients.trim.client.connect());
    await waitPage('an unrecovered event', ({ key }) => window.clients[key].unrecovered.length >= 1, { key: 'trim' });
    const rec = await page.evaluate(() => ({ got: window.clients.trim.got, unrecovered: window.clients.trim.unrecovered }));
    const u = rec.unrecovered[0];
    if (u.stream !== trimStream || u.gap !== 'trimmed') throw new Error(`expected unrecovered ${trimStream} with gap "trimmed", got ${JSON.stringify(u)}`);
    checkExactlyOnceInOrder(rec.got, 3);
    summary.trim = { user: trim, unrecovered: u };
  });

  if (pageErrors.length) throw new Error(`the page threw: ${pageErrors.join('; ')}`);
  if (args.shots) {
    mkdirSync(args.shots, { recursive: true });
    const path = join(args.shots, 'js-client-browser.png');
    await page.screenshot({ path, fullPage: true });
    console.log('screenshot:', path);
  }
} catch (err) {
  failed = err;
  if (page && args.shots) {
    const path = join(args.shots, 'js-client-browser-failure.png');
    mkdirSync(args.shots, { recursive: true });
    await page.screenshot({ path, fullPage: true }).then(() => console.error('screenshot:', path), () => {});
  }
} finally {
  await page?.evaluate(() => Object.values(window.clients || {}).forEach((r) => r.client.disconnect())).catch(() => {});
  await browser?.close().catch(() => {});
}

if (failed) {
  console.error(`FAILED - ${failed.message}`);
  process.exit(1);
}
console.log(
  `PASSED - browser: ${summary.keep.user} got ${summary.keep.received}/${N} in order over ${summary.keep.reconnects} reconnects ` +
    `(close codes ${summary.keep.closeCodes.join(', ')}), all recovered; ${summary.trim.user}: unrecovered ${JSON.stringify(summary.trim.unrecovered)}`,
);
process.exit(0);
