// The mini-program in Node, against a running system: the gateway with this example's
// wsgate.toml, `node login.mjs`, Redis; messages published with `php publish.php`.
//
//   node test/miniprogram.test.mjs --login http://127.0.0.1:3002 --api http://127.0.0.1:8082 --prefix UNIQUE [--redis 127.0.0.1:6379]
//
// Each simulated phone runs the real mini-program (miniprogram/app.js and
// miniprogram/pages/index/index.js, unchanged) in a fresh V8 context with what the WeChat
// runtime provides: App(), Page(), getApp(), require() of the mini-program's files, and a small
// fake of `wx`: wx.login (the code is the phone's user id, see login.mjs), wx.request (over
// fetch), wx.connectSocket (a SocketTask around a real WebSocket from the `ws` package) and
// wx.getStorageSync/setStorageSync. libs/wsgate.js is the JS client built from clients/js/src
// into a temporary directory (the build the README tells users to copy there), and config.js's
// loginUrl is set to --login (what a developer edits there).
//
// Checks: users PREFIX-a and PREFIX-b log in and connect with their JWT; a message published
// to A shows in A's page data and not B's; B's own message shows in B's (B's list holds exactly
// that one: on one connection it would have come after A's); A's phone loses its socket
// abruptly, a message published meanwhile shows once after the reconnect (the user stream).
//
// Exit codes: 0 passed, 1 a check failed, 2 bad arguments, 3 the run took over 60 s.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import vm from 'node:vm';
import WebSocket from 'ws';

import { build } from '../../../clients/js/build.mjs';
import { EXAMPLE, deadline, online, parseArgs, publish, step, userId, waitFor } from './harness.mjs';

const USAGE = 'node test/miniprogram.test.mjs --login http://HOST:PORT --api http://HOST:PORT --prefix UNIQUE [--redis HOST:PORT]';
const args = parseArgs(USAGE, ['login', 'api', 'prefix'], { redis: '127.0.0.1:6379' });
deadline(60_000, 'miniprogram.test.mjs');
const MINIPROGRAM = join(EXAMPLE, 'miniprogram');

/** A fake `wx` for one phone. */
function fakeWx(code) {
  const storage = new Map();
  const sockets = [];
  return {
    sockets,
    login({ success, fail }) {
      setTimeout(() => (code ? success({ code, errMsg: 'login:ok' }) : fail({ errMsg: 'login:fail' })), 0);
    },
    request({ url, method = 'GET', data, header = {}, success, fail, complete }) {
      const headers = { 'content-type': 'application/json', ...header };
      const body = method === 'GET' || data === undefined ? undefined : typeof data === 'string' ? data : JSON.stringify(data);
      fetch(url, { method, headers, body })
        .then(async (res) => {
          const text = await res.text();
          let parsed = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // wx.request gives the text when it is not JSON
          }
          const out = { statusCode: res.status, data: parsed, header: Object.fromEntries(res.headers), errMsg: 'request:ok' };
          if (success) success(out);
          if (complete) complete(out);
        })
        .catch((err) => {
          const out = { errMsg: `request:fail ${err.cause ? err.cause.message : err.message}` };
          if (fail) fail(out);
          if (complete) complete(out);
        });
    },
    connectSocket({ url, protocols, header, complete }) {
      const ws = new WebSocket(url, protocols, { headers: header });
      const on = { open: [], message: [], close: [], error: [] };
      let responseHeaders = {};
      ws.on('upgrade', (res) => (responseHeaders = res.headers));
      ws.on('open', () => on.open.forEach((fn) => fn({ header: responseHeaders, profile: {} })));
      ws.on('message', (data, isBinary) => on.message.forEach((fn) => fn({ data: isBinary ? new Uint8Array(data).buffer : data.toString('utf8') })));
      ws.on('close', (code, reason) => on.close.forEach((fn) => fn({ code, reason: reason.toString('utf8') })));
      ws.on('error', (err) => on.error.forEach((fn) => fn({ errMsg: `connectSocket:fail ${err.message}` })));
      const task = {
        onOpen: (fn) => on.open.push(fn),
        onMessage: (fn) => on.message.push(fn),
        onClose: (fn) => on.close.push(fn),
        onError: (fn) => on.error.push(fn),
        send({ data, success, fail: sendFail }) {
          ws.send(data, (err) => (err ? sendFail && sendFail({ errMsg: `sendSocketMessage:fail ${err.message}` }) : success && success({})));
        },
        close({ code, reason } = {}) {
          ws.close(code, reason);
        },
      };
      sockets.push({ url, protocols, ws, task });
      if (complete) setTimeout(() => complete({ errMsg: 'connectSocket:ok' }), 0);
      return task;
    },
    getStorageSync: (key) => (storage.has(key) ? storage.get(key) : ''),
    setStorageSync: (key, value) => storage.set(key, JSON.parse(JSON.stringify(value))),
    onNetworkStatusChange() {},
  };
}

/**
 * One phone running the mini-program: a V8 context of its own holding the `wx` fake and the
 * App/Page/getApp shims; modules are loaded the way the mini-program runtime does (CommonJS,
 * paths relative to the requiring file). `libs/wsgate.js` comes from `clientBuild`.
 */
function phone(code, clientBuild) {
  const wx = fakeWx(code);
  let app = null;
  const pages = [];
  const context = vm.createContext({
    wx,
    console,
    setTimeout,
    clearTimeout,
    setInterval,
    clearInterval,
    App(definition) {
      app = definition;
      if (app.onLaunch) app.onLaunch({});
    },
    getApp: () => app,
    Page(definition) {
      const page = { ...definition, data: JSON.parse(JSON.stringify(definition.data || {})) };
      page.setData = (changes) => Object.assign(page.data, changes);
      pages.push(page);
    },
  });
  const cache = new Map();
  function load(file) {
    if (cache.has(file)) return cache.get(file).exports;
    const source = readFileSync(file === join(MINIPROGRAM, 'libs', 'wsgate.js') ? clientBuild : file, 'utf8');
    const module = { exports: {} };
    cache.set(file, module);
    const wrapped = vm.runInContext(`(function (require, module, exports) {${source}\n})`, context, { filename: file });
    wrapped((path) => load(resolve(dirname(file), path)), module, module.exports);
    // What a developer edits in config.js: where the login backend runs.
    if (file === join(MINIPROGRAM, 'config.js')) module.exports.loginUrl = `${args.login}/login`;
    return module.exports;
  }
  function resolve(from, path) {
    const full = normalize(join(path.startsWith('/') ? MINIPROGRAM : from, path));
    if (!full.startsWith(MINIPROGRAM)) throw new Error(`require('${path}') leaves the mini-program`);
    return full.endsWith('.js') ? full : `${full}.js`;
  }
  load(join(MINIPROGRAM, 'app.js'));
  load(join(MINIPROGRAM, 'pages', 'index', 'index.js'));
  const page = pages[0];
  page.onLoad({});
  return { wx, page, app: () => app };
}

/** The texts on a page, newest first. */
const texts = (p) => p.page.data.messages.map((m) => m.text);

let outDir;
let phones = [];
try {
  outDir = mkdtempSync(join(tmpdir(), 'wsgate-miniprogram-'));
  const clientBuild = await step('build the JS client (clients/js/build.mjs) for libs/wsgate.js', () => build({ outDir }).script);
  const a = userId(args.prefix, 'a');
  const b = userId(args.prefix, 'b');
  const [pa, pb] = (phones = [phone(a, clientBuild), phone(b, clientBuild)]);

  await step(`${a} and ${b} log in and connect with their JWT`, async () => {
    for (const [p, user] of [
      [pa, a],
      [pb, b],
    ]) {
      await waitFor(`${user}'s page to connect`, () => p.page.data.state === 'connected').catch((err) => {
        throw new Error(`${err.message}; page data ${JSON.stringify(p.page.data)}`);
      });
      if (p.page.data.user !== user) throw new Error(`the page says user ${p.page.data.user}, expected ${user}`);
      const { url, protocols } = p.wx.sockets[0];
      if (/token=/.test(url)) throw new Error(`the token went in the URL: ${url}`);
      if (!protocols.includes('wsgate.jwt')) throw new Error(`the token was not offered as the wsgate.jwt subprotocol: ${protocols}`);
      const claims = JSON.parse(Buffer.from(protocols[protocols.indexOf('wsgate.jwt') + 1].split('.')[1], 'base64url'));
      if (claims.sub !== user || !(claims.exp > Date.now() / 1000)) throw new Error(`unexpected claims ${JSON.stringify(claims)}`);
      await online(args.api, user);
    }
  });

  await step('a bad code is refused by the login backend', async () => {
    const res = await fetch(`${args.login}/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"code":"no spaces allowed"}' });
    if (res.status !== 400) throw new Error(`expected 400, got ${res.status}`);
  });

  const forA = `for ${a} only ✓`;
  await step(`publish.php to ${a}: A's page shows it`, async () => {
    await publish(a, forA, args.redis);
    await waitFor(`A's page to show ${JSON.stringify(forA)}`, () => texts(pa).includes(forA));
  });

  const forB = `for ${b}: 你好`;
  await step(`publish.php to ${b}: B's page shows only its own`, async () => {
    await publish(b, forB, args.redis);
    await waitFor(`B's page to show ${JSON.stringify(forB)}`, () => texts(pb).includes(forB));
    // Had B's connection been sent A's message, it would have come before B's own.
    if (JSON.stringify(texts(pb)) !== JSON.stringify([forB])) throw new Error(`B's page holds ${JSON.stringify(texts(pb))}`);
    if (JSON.stringify(texts(pa)) !== JSON.stringify([forA])) throw new Error(`A's page holds ${JSON.stringify(texts(pa))}`);
  });

  const whileAway = `while ${a} was away`;
  await step(`A's socket dies (no close frame); a message published meanwhile shows once after the reconnect`, async () => {
    const first = pa.wx.sockets.length;
    pa.wx.sockets[first - 1].ws.terminate();
    await publish(a, whileAway, args.redis);
    await waitFor(`A's page to show ${JSON.stringify(whileAway)}`, () => texts(pa).includes(whileAway), 15_000);
    if (pa.wx.sockets.length <= first) throw new Error('A never reconnected');
    await waitFor("A's page connected again", () => pa.page.data.state === 'connected');
    const last = `after ${a} came back`;
    await publish(a, last, args.redis);
    await waitFor(`A's page to show ${JSON.stringify(last)}`, () => texts(pa).includes(last));
    const want = [last, whileAway, forA];
    if (JSON.stringify(texts(pa)) !== JSON.stringify(want)) throw new Error(`A's page holds ${JSON.stringify(texts(pa))}, expected ${JSON.stringify(want)}`);
    if (JSON.stringify(texts(pb)) !== JSON.stringify([forB])) throw new Error(`B's page holds ${JSON.stringify(texts(pb))}`);
    if (pa.page.data.error) throw new Error(`A's page shows an error: ${pa.page.data.error}`);
  });
  console.log(`PASSED - the mini-program over the wx adapter: ${a} got ${texts(pa).length} messages, ${b} got ${texts(pb).length}, none of the other's`);
} catch (err) {
  console.error(`FAILED - ${err.message}`);
  process.exitCode = 1;
} finally {
  for (const p of phones) p.page.onUnload();
  if (outDir) rmSync(outDir, { recursive: true, force: true });
}
process.exit(process.exitCode || 0);
