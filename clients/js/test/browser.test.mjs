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
// Cluster mode (two gateways sharing the Redis stream engine, both with the rules above):
//
//   node test/browser.test.mjs --ws ws://A/ws --ws2 ws://B/ws --api http://B-API --secret S [--restart]
//
// The page's client gets both URLs, [A, B]: the first connection goes to A, each reconnect to
// the next one. The cuts are: force-offline, dropSocket(), [with --restart: gateway A restarts],
// force-offline, dropSocket(). With --restart, at that point the script prints the line
// RESTART-GATEWAY on stdout and waits (30 s at most) for a line RESTARTED on stdin: the harness
// stops gateway A (closing its clients), starts it again on the same addresses, and answers.
// Nothing is published meanwhile. --api must be the gateway that stays up (B). A force-offline
// that closed no connection (the client is on a gateway the API cannot reach yet) is retried
// for 10 s. Checks: "1".."200" exactly once each in order, every reconnect recovered, no
// `unrecovered`, the first connection used A and a later one B (so the client recovered on the
// other gateway); then, once the API's answers name no failed gateway (15 s at most), the
// trim-* check as above, through A.
//
// Exit codes: 0 passed, 1 a check failed, 2 bad arguments, 3 the run took over 90 s (120 s in
// cluster mode).

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

import { build } from '../build.mjs';
import {
  Api,
  checkExactlyOnceInOrder,
  cutPoints,
  deadline,
  lineReader,
  makeJwt,
  parseArgs,
  sleep,
  step,
  uniqueUser,
  usageError,
  writeStdout,
} from './e2e-common.mjs';

const USAGE =
  'node test/browser.test.mjs --ws ws://HOST:PORT/ws --api http://HOST:PORT --secret JWTSECRET [--shots DIR] [--api-key KEY] [--ws2 ws://HOST2:PORT/ws [--restart]]';
const args = parseArgs(USAGE, { flags: ['restart'] });
if (args.ws2 !== undefined && !/^wss?:\/\//.test(args.ws2)) usageError(USAGE, `--ws2 must be a ws:// or wss:// URL, got ${args.ws2}`);
if (args.restart && !args.ws2) usageError(USAGE, '--restart needs --ws2 (the gateway the client goes to while the one of --ws restarts)');
// Cluster mode: the client gets [--ws, --ws2].
const CLUSTER = Boolean(args.ws2);
deadline(CLUSTER ? 120_000 : 90_000, 'browser.test.mjs');
const api = new Api(args.api, args.apiKey);
// With --restart the harness answers on stdin; read from the start so no line is lost.
const harness = args.restart ? lineReader(process.stdin) : null;
const RESTART_REQUEST = 'RESTART-GATEWAY';
const RESTART_DONE = 'RESTARTED';
const RESTART_TIMEOUT = 30_000;
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
  var rec = { got: [], via: [], url: null, joined: [], unrecovered: [], states: [], errors: [] };
  var client = new WsgateClient(url, { token: token, transport: WsgateClient.adapters.browser() });
  rec.client = client;
  client.on('state', function (e) { if (e.state === 'connected') rec.url = e.url; });
  client.on('publication', function (e) { rec.got.push(e.data); rec.via.push(rec.url); render(); });
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
const restarted = {}; // where the client was when the gateway restarted
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

  const waitPage = (what, fn, arg, ms = WAIT) =>
    page.waitForFunction(fn, arg, { timeout: ms, polling: 20 }).catch(async (err) => {
      const states = await page.evaluate((k) => window.clients[k] && window.clients[k].states.slice(-2), arg && arg.key).catch(() => null);
      throw new Error(`timed out waiting for ${what}${states ? `; last states ${JSON.stringify(states)}` : ''} (${err.message.split('\n')[0]})`);
    });

  // ---- keep-*: recovery across cuts ----
  const keep = uniqueUser('keep');
  const keepStream = `user:${keep}`;
  const keepUrls = CLUSTER ? [args.ws, args.ws2] : args.ws;
  await step(`${keep} connects from the page${CLUSTER ? ` (gateways ${args.ws}, ${args.ws2})` : ''} and joins ${keepStream}`, async () => {
    await page.evaluate(([url, token]) => window.startClient('keep', url, token), [keepUrls, makeJwt(args.secret, keep)]);
    await waitPage(`the first joined (is the gateway using --jwt-secret and "users keep-* history=1000 age=10m"?)`, ({ key }) => window.clients[key].joined.length >= 1, { key: 'keep' });
    const first = await page.evaluate(() => {
      const rec = window.clients.keep;
      return { joined: rec.joined[0], connected: rec.states.find((s) => s.state === 'connected') };
    });
    if (first.joined.stream !== keepStream) throw new Error(`joined ${first.joined.stream}, expected ${keepStream}`);
    if (first.connected.protocol !== 'wsgate.stream.v1') throw new Error(`the gateway selected ${JSON.stringify(first.connected.protocol)}, not wsgate.stream.v1`);
    if (CLUSTER && first.connected.url !== args.ws) throw new Error(`the first connection used ${JSON.stringify(first.connected.url)}, expected the first URL ${args.ws}`);
  });

  // Cluster mode: a force-offline that closed nothing did not reach the client's gateway (say,
  // the API's link to a gateway that just restarted is not up yet): try again for 10 s.
  const cutFromServer = async () => {
    for (let tries = 1; ; tries++) {
      const reply = await api.forceOffline(keep, 4000, 'test cut');
      if (!CLUSTER || reply.delivered > 0) return;
      if (tries >= 20) {
        throw new Error(`force-offline of ${keep} closed no connection in ${tries} tries, last answer ${JSON.stringify(reply)}: does the API's cluster client reach both gateways?`);
      }
      console.log(`# force-offline of ${keep} closed no connection (answer ${JSON.stringify(reply)}); trying again in 500 ms`);
      await sleep(500);
    }
  };
  const restartGateway = async (clientUrl) => {
    console.log(`# the client is connected to ${clientUrl}; asking the harness to restart the gateway of --ws (${args.ws})`);
    const started = Date.now();
    await writeStdout(`${RESTART_REQUEST}\n`);
    await harness.waitForLine(RESTART_DONE, RESTART_TIMEOUT);
    console.log(`# ${RESTART_DONE} after ${Date.now() - started} ms`);
  };

  const kinds = ['server', 'page', ...(args.restart ? ['restart'] : []), 'server', 'page'];
  const cuts = cutPoints(N, kinds.length);
  let expectedReconnects = 0;
  await step(`publish ${N} messages, cutting at ${cuts.join(', ')} (${kinds.join(', ')})`, async () => {
    let joinedBefore = 1;
    for (let n = 1; n <= N; n++) {
      const at = cuts.indexOf(n);
      if (at >= 0) {
        await waitPage(`the reconnect before cut ${at + 1} (${kinds[at]})`, ({ key, joined }) => {
          const rec = window.clients[key];
          return rec.joined.length >= joined && rec.client.state === 'connected';
        }, { key: 'keep', joined: joinedBefore });
        // Counted before the cut: the reconnect may be done by the time the cut returns.
        const now = await page.evaluate(() => ({ joined: window.clients.keep.joined.length, url: window.clients.keep.url }));
        if (kinds[at] === 'server') {
          await cutFromServer();
          joinedBefore = now.joined + 1;
          expectedReconnects++;
        } else if (kinds[at] === 'page') {
          await page.evaluate(() => window.clients.keep.client.dropSocket('test: network changed'));
          joinedBefore = now.joined + 1;
          expectedReconnects++;
        } else {
          await restartGateway(now.url);
          // Only a client on the restarted gateway was closed; after the restart it may be on
          // either gateway.
          const wasOnIt = now.url === args.ws;
          joinedBefore = now.joined + (wasOnIt ? 1 : 0);
          if (wasOnIt) expectedReconnects++;
          restarted.clientWasOn = now.url;
          restarted.atMessage = n;
        }
      }
      await api.sendToUser(keep, String(n));
      await sleep(5);
    }
  });

  await step(`the page received "1".."${N}" exactly once each, in order, every reconnect recovered`, async () => {
    if (CLUSTER) {
      // Stop waiting at the first sign of a gap, and on a timeout still say everything that is wrong.
      await waitPage(`${N} messages`, ({ key, n }) => window.clients[key].got.length >= n || window.clients[key].unrecovered.length > 0, { key: 'keep', n: N }, 30_000)
        .catch((err) => console.log(`# ${err.message}`));
    } else {
      await waitPage(`${N} messages`, ({ key, n }) => window.clients[key].got.length >= n, { key: 'keep', n: N }, 30_000);
    }
    await sleep(300); // a duplicate would arrive now
    const rec = await page.evaluate(() => {
      const r = window.clients.keep;
      return {
        got: r.got,
        via: r.via,
        joined: r.joined,
        unrecovered: r.unrecovered,
        errors: r.errors,
        closes: r.states.filter((s) => s.state === 'disconnected').map((s) => s.code),
        connectedUrls: r.states.filter((s) => s.state === 'connected').map((s) => s.url),
      };
    });
    const problems = [];
    try {
      checkExactlyOnceInOrder(rec.got, N);
    } catch (err) {
      problems.push(err.message);
    }
    const reconnects = rec.joined.slice(1);
    if (reconnects.length < expectedReconnects) problems.push(`expected ${expectedReconnects} reconnects, saw ${reconnects.length} joined events after the first`);
    const bad = reconnects.filter((j) => j.recovered !== true);
    if (bad.length) problems.push(`reconnects that did not recover: ${JSON.stringify(bad)}`);
    if (rec.unrecovered.length) problems.push(`unrecovered events: ${JSON.stringify(rec.unrecovered)}`);
    if (rec.errors.length) problems.push(`the client reported: ${rec.errors.join('; ')}`);
    if (CLUSTER) {
      const urls = rec.connectedUrls;
      const stray = urls.filter((u) => u !== args.ws && u !== args.ws2);
      if (stray.length) problems.push(`connected states with a url that is neither --ws nor --ws2: ${JSON.stringify(stray)}`);
      if (urls[0] !== args.ws) problems.push(`the first connection used ${urls[0]}, expected ${args.ws}`);
      if (!urls.slice(1).includes(args.ws2)) problems.push(`no connection after the first used ${args.ws2}: the client never recovered on the other gateway`);
      if (problems.length) problems.push(`(connections: ${urls.join(' -> ')}${args.restart ? `; the gateway of --ws restarted before message ${restarted.atMessage}` : ''})`);
    }
    if (problems.length) throw new Error(problems.join('; '));
    summary.keep = { user: keep, received: rec.got.length, reconnects: reconnects.length, closeCodes: rec.closes };
    if (CLUSTER) {
      const perUrl = {};
      for (const u of rec.via) perUrl[u] = (perUrl[u] || 0) + 1;
      summary.keep.connections = rec.connectedUrls;
      summary.keep.perUrl = perUrl;
    }
  });

  if (CLUSTER) {
    // The trim client uses --ws only: after a restart, wait (15 s at most) until the API's cluster
    // client reaches that gateway again, i.e. its answers name no failed gateway. A send to a
    // user with no stream and no connection delivers nothing.
    await step('wait until the API reaches every gateway (its answers name no failed gateway)', async () => {
      const probe = uniqueUser('probe');
      const until = Date.now() + 15_000;
      for (;;) {
        const reply = await api.sendToUser(probe, 'probe');
        const failedGateways = Array.isArray(reply.failed) ? reply.failed : [];
        if (failedGateways.length === 0) return;
        if (Date.now() > until) {
          console.log(`# the API still names failed gateways after 15 s: ${JSON.stringify(failedGateways)}; going on`);
          return;
        }
        await sleep(250);
      }
    });
  }

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
  console.error(`FAILED - ${CLUSTER ? 'cluster mode: ' : ''}${failed.message}`);
  process.exit(1);
}
if (CLUSTER) {
  const k = summary.keep;
  console.log(
    `PASSED - browser cluster: ${k.user} got ${k.received}/${N} in order over ${k.reconnects} reconnects ` +
      `(close codes ${k.closeCodes.join(', ')}), all recovered; connections: ${k.connections.join(' -> ')}; ` +
      `received per gateway ${JSON.stringify(k.perUrl)}; ` +
      (args.restart ? `gateway ${args.ws} restarted before message ${restarted.atMessage} (the client was on ${restarted.clientWasOn}); ` : 'no restart; ') +
      `${summary.trim.user}: unrecovered ${JSON.stringify(summary.trim.unrecovered)}`,
  );
  process.exit(0);
}
console.log(
  `PASSED - browser: ${summary.keep.user} got ${summary.keep.received}/${N} in order over ${summary.keep.reconnects} reconnects ` +
    `(close codes ${summary.keep.closeCodes.join(', ')}), all recovered; ${summary.trim.user}: unrecovered ${JSON.stringify(summary.trim.unrecovered)}`,
);
process.exit(0);
