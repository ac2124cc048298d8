// Unit tests: no gateway, no network. The client runs over a scripted in-memory transport; the
// test plays the gateway by pushing frames. Run with `npm test` (node --test test/unit.test.mjs).

import { test } from 'node:test';
import assert from 'node:assert/strict';

import { WsgateClient } from '../src/client.js';
import { decodeBase64, encodeBase64, utf8Decode, utf8Encode } from '../src/base64.js';
import { Backoff } from '../src/backoff.js';
import { chooseRecover, encodeRecover, isDuplicate, withRecoverParam } from '../src/positions.js';
import { headerProtocol } from '../src/adapters/socket-task.js';
import { wxTransport } from '../src/adapters/wx.js';
import { uniTransport } from '../src/adapters/uni.js';
import { browserTransport } from '../src/adapters/browser.js';

// ---- a scripted transport ------------------------------------------------------------------

class FakeSocket {
  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.sent = [];
    this.closed = null;
    this.onopen = this.onmessage = this.onclose = this.onerror = null;
  }
  send(data) {
    if (this.closed) throw new Error('send on a closed fake socket');
    this.sent.push(data);
  }
  close(code, reason) {
    this.closed = { code, reason };
  }
  // The gateway's side.
  accept(protocol = 'wsgate.stream.v1') {
    this.onopen?.({ protocol });
  }
  push(frame) {
    this.onmessage?.(typeof frame === 'string' || frame instanceof ArrayBuffer ? frame : JSON.stringify(frame));
  }
  drop(code = 1006, reason = '') {
    this.closed = { code, reason };
    this.onclose?.({ code, reason });
  }
  frames(type) {
    return this.sent.filter((s) => typeof s === 'string').map((s) => JSON.parse(s)).filter((f) => !type || f.type === type);
  }
  recover() {
    const q = this.url.split('?')[1] || '';
    const part = q.split('&').find((p) => p.startsWith('wsgate_recover='));
    return part ? JSON.parse(Buffer.from(part.slice('wsgate_recover='.length), 'base64url').toString('utf8')) : undefined;
  }
}

class FakeTransport {
  constructor() {
    this.name = 'fake';
    this.sockets = [];
  }
  open(url, protocols) {
    const socket = new FakeSocket(url, protocols);
    this.sockets.push(socket);
    return socket;
  }
  get last() {
    return this.sockets[this.sockets.length - 1];
  }
}

const FAST = { min: 1, max: 4, factor: 2, jitter: 0 };

/** A client over a fake transport, recording every event. */
function setup(options = {}) {
  const transport = new FakeTransport();
  const client = new WsgateClient(options.url || 'ws://gw.test/ws', { transport, backoff: FAST, pingInterval: 0, ...options });
  const seen = { state: [], publication: [], message: [], joined: [], unrecovered: [], error: [] };
  for (const name of Object.keys(seen)) client.on(name, (e) => seen[name].push(e));
  return { client, transport, seen };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, ms = 2000) {
  const until = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** Connects and lets the fake gateway accept: returns the socket. */
async function connected(t, protocol) {
  const before = t.transport.sockets.length;
  if (t.client.state === 'closed') t.client.connect();
  await waitFor('a socket', () => t.transport.sockets.length > before);
  t.transport.last.accept(protocol);
  return t.transport.last;
}

const pub = (stream, epoch, offset, data, extra = {}) => ({ type: 'publication', stream, epoch, offset, data: data ?? `m${offset}`, ...extra });
const datas = (events) => events.map((e) => e.data);

// ---- base64 and UTF-8 ----------------------------------------------------------------------

test('base64 encodes and decodes binary exactly as Buffer does', () => {
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
  for (let len = 0; len < 200; len++) {
    const bytes = Uint8Array.from({ length: len }, rand);
    const buf = Buffer.from(bytes);
    assert.equal(encodeBase64(bytes), buf.toString('base64'));
    assert.equal(encodeBase64(bytes, true), buf.toString('base64url'));
    assert.deepEqual(decodeBase64(buf.toString('base64')), bytes);
    assert.deepEqual(decodeBase64(buf.toString('base64url')), bytes);
    assert.deepEqual(decodeBase64(buf.toString('base64').replace(/=+$/, '')), bytes);
  }
  // Views and ArrayBuffers are encoded over their own bytes only.
  const big = Uint8Array.from([9, 1, 2, 3, 9]);
  assert.equal(encodeBase64(big.subarray(1, 4)), 'AQID');
  assert.equal(encodeBase64(big.buffer), Buffer.from(big).toString('base64'));
  assert.equal(encodeBase64(new DataView(big.buffer, 1, 3)), 'AQID');
});

test('base64 decoding refuses what is not base64', () => {
  assert.throws(() => decodeBase64('ab$d'), /invalid base64 character "\$" at 2/);
  assert.throws(() => decodeBase64('abcde'), /cannot encode whole bytes/);
  assert.throws(() => decodeBase64('ab==='), /too much padding/);
  assert.throws(() => decodeBase64('aéb'), /invalid base64 character "é" at 1/);
});

test('UTF-8 text round trips through base64, as Buffer does', () => {
  const texts = ['', 'hello', 'héllo wörld', '订单 7 已支付', 'emoji 🎉🚀 and 𝄞', '\u0000\u007f\u0080\u07ff\u0800\uffff', 'lone \ud800 and \udc00 surrogates'];
  for (const text of texts) {
    const bytes = utf8Encode(text);
    assert.deepEqual(Buffer.from(bytes), Buffer.from(text, 'utf8'), `utf8Encode(${JSON.stringify(text)})`);
    assert.equal(encodeBase64(bytes), Buffer.from(text, 'utf8').toString('base64'));
    assert.equal(utf8Decode(decodeBase64(encodeBase64(bytes))), Buffer.from(text, 'utf8').toString('utf8'));
  }
  // Ill-formed input decodes to U+FFFD rather than throwing.
  const bad = [[0xff], [0xc3], [0xe2, 0x82], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0x61, 0x80, 0x62]];
  for (const bytes of bad) {
    const text = utf8Decode(Uint8Array.from(bytes));
    assert.ok(text.includes('\ufffd'), `utf8Decode(${bytes}) = ${JSON.stringify(text)}`);
  }
  assert.equal(utf8Decode(Uint8Array.from([0x61, 0x80, 0x62])), 'a\ufffdb');
});

// ---- positions -----------------------------------------------------------------------------

test('wsgate_recover is base64url JSON without padding', () => {
  const positions = new Map([
    ['topic:order:7', { epoch: 'k7q2', offset: 12 }],
    ['user:42', { epoch: 'x1', offset: 3 }],
  ]);
  const value = encodeRecover(positions);
  assert.match(value, /^[A-Za-z0-9_-]+$/);
  assert.deepEqual(JSON.parse(Buffer.from(value, 'base64url').toString()), {
    'topic:order:7': { epoch: 'k7q2', offset: 12 },
    'user:42': { epoch: 'x1', offset: 3 },
  });
  // The example in docs/streams.md.
  assert.equal(
    encodeRecover(new Map([['topic:order:7', { epoch: 'k7q2', offset: 12 }]])),
    'eyJ0b3BpYzpvcmRlcjo3Ijp7ImVwb2NoIjoiazdxMiIsIm9mZnNldCI6MTJ9fQ',
  );
});

test('the recover parameter merges with the URL query and fragment', () => {
  assert.equal(withRecoverParam('ws://h/ws', 'AB'), 'ws://h/ws?wsgate_recover=AB');
  assert.equal(withRecoverParam('ws://h/ws?room=7', 'AB'), 'ws://h/ws?room=7&wsgate_recover=AB');
  assert.equal(withRecoverParam('ws://h/ws?a=1&wsgate_recover=OLD&b=2#x', 'NEW'), 'ws://h/ws?a=1&b=2&wsgate_recover=NEW#x');
  assert.equal(withRecoverParam('ws://h/ws?wsgate_recover=OLD', ''), 'ws://h/ws');
  assert.equal(withRecoverParam('ws://h/ws?a=1&', ''), 'ws://h/ws?a=1');
});

test('recover keeps the newest positions within the stream and length limits', () => {
  const many = new Map();
  for (let i = 0; i < 1500; i++) many.set(`topic:t${i}`, { epoch: 'e', offset: i });
  const all = chooseRecover(many, 1e9);
  assert.equal(all.sent.size, 1024);
  assert.ok(all.sent.has('topic:t1499') && !all.sent.has('topic:t0'), 'the most recently updated are sent');
  assert.equal(all.unsent.size, 476);
  const small = chooseRecover(many, 500);
  assert.ok(small.value.length <= 500 && small.sent.size > 0, `${small.value.length} chars, ${small.sent.size} streams`);
  assert.ok(small.sent.has('topic:t1499'));
  assert.deepEqual(chooseRecover(new Map(), 100), { value: '', sent: new Set(), unsent: new Set() });
});

test('a publication is a duplicate only in the same epoch at or below the position', () => {
  const p = { epoch: 'a', offset: 5 };
  assert.equal(isDuplicate(undefined, 'a', 1), false);
  assert.equal(isDuplicate(p, 'a', 4), true);
  assert.equal(isDuplicate(p, 'a', 5), true);
  assert.equal(isDuplicate(p, 'a', 6), false);
  assert.equal(isDuplicate(p, 'b', 1), false);
});

// ---- backoff -------------------------------------------------------------------------------

test('backoff doubles from min to max, within the jitter', () => {
  const fixed = (r) => new Backoff({}, () => r);
  const mid = fixed(0.5);
  assert.deepEqual(Array.from({ length: 9 }, () => mid.next()), [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000, 20000]);
  const low = fixed(0);
  assert.deepEqual([low.next(), low.next()], [250, 500]);
  const high = fixed(0.999999);
  assert.deepEqual([high.next(), high.next()], [750, 1500]);
  mid.reset();
  assert.equal(mid.next(), 500);

  const real = new Backoff({ min: 100, max: 1000, factor: 3, jitter: 0.2 });
  for (let i = 0; i < 200; i++) {
    const attempt = real.attempt;
    const base = Math.min(1000, 100 * 3 ** attempt);
    const d = real.next();
    assert.ok(d >= Math.floor(base * 0.8) && d <= Math.ceil(base * 1.2), `attempt ${attempt}: ${d} not within ±20% of ${base}`);
    if (i % 10 === 9) real.reset();
  }
  assert.throws(() => new Backoff({ min: 10, max: 5 }), /must not be below/);
  assert.throws(() => new Backoff({ jitter: 2 }), /at most 1/);
});

// ---- the client over the fake transport ----------------------------------------------------

test('offers the stream subprotocol and the JWT, fetching a fresh token per attempt', async () => {
  let n = 0;
  const t = setup({ token: async () => `tok${++n}` });
  const s1 = await connected(t);
  assert.deepEqual(s1.protocols, ['wsgate.stream.v1', 'wsgate.jwt', 'tok1']);
  assert.equal(t.client.state, 'connected');
  s1.drop(4000, 'test cut');
  await waitFor('a reconnect', () => t.transport.sockets.length === 2);
  assert.deepEqual(t.transport.last.protocols, ['wsgate.stream.v1', 'wsgate.jwt', 'tok2']);
  const states = t.seen.state.map((s) => s.state);
  assert.deepEqual(states, ['connecting', 'connected', 'disconnected', 'connecting']);
  const d = t.seen.state[2];
  assert.equal(d.code, 4000);
  assert.equal(d.reason, 'test cut');
  assert.equal(typeof d.delay, 'number');
  t.client.disconnect();

  const noToken = setup();
  const s = await connected(noToken);
  assert.deepEqual(s.protocols, ['wsgate.stream.v1']);
  assert.equal(s.recover(), undefined, 'no positions, no wsgate_recover');
  noToken.client.disconnect();
});

test('replay then joined(recovered: true) delivers each publication once', async () => {
  const t = setup({ positions: { 'user:1': { epoch: 'e1', offset: 2 } } });
  const s = await connected(t);
  assert.deepEqual(s.recover(), { 'user:1': { epoch: 'e1', offset: 2 } });
  // A replay that overlaps what the client has, the join, then live messages (one repeated).
  for (let i = 1; i <= 5; i++) s.push(pub('user:1', 'e1', i));
  s.push({ type: 'joined', stream: 'user:1', epoch: 'e1', offset: 5, recovered: true });
  s.push(pub('user:1', 'e1', 5));
  s.push(pub('user:1', 'e1', 6));
  assert.deepEqual(datas(t.seen.publication), ['m3', 'm4', 'm5', 'm6']);
  assert.deepEqual(t.seen.publication[0], { stream: 'user:1', epoch: 'e1', offset: 3, data: 'm3', ack: undefined });
  assert.deepEqual(t.seen.joined, [{ stream: 'user:1', epoch: 'e1', offset: 5, recovered: true, gap: undefined, latest: false }]);
  assert.deepEqual(t.seen.unrecovered, []);
  assert.deepEqual(t.client.positions(), { 'user:1': { epoch: 'e1', offset: 6 } });
  // A new epoch is a new run of offsets: offset 1 is new.
  s.push(pub('user:1', 'e2', 1));
  assert.deepEqual(datas(t.seen.publication).slice(-1), ['m1']);
  assert.deepEqual(t.client.positions(), { 'user:1': { epoch: 'e2', offset: 1 } });
  t.client.disconnect();
});

test('joined(recovered: false) fires unrecovered and takes the new position', async () => {
  const t = setup({ positions: { 'user:9': { epoch: 'e1', offset: 3 } } });
  const s = await connected(t);
  s.push({ type: 'joined', stream: 'user:9', epoch: 'e1', offset: 40, recovered: false, gap: 'trimmed' });
  assert.deepEqual(t.seen.unrecovered, [{ stream: 'user:9', gap: 'trimmed', epoch: 'e1', offset: 40 }]);
  assert.equal(t.seen.joined[0].recovered, false);
  assert.equal(t.seen.joined[0].gap, 'trimmed');
  assert.deepEqual(t.client.positions(), { 'user:9': { epoch: 'e1', offset: 40 } });
  s.push(pub('user:9', 'e1', 41));
  assert.deepEqual(datas(t.seen.publication), ['m41']);
  t.client.disconnect();
});

test('cache mode: the latest message before joined on a fresh join is delivered', async () => {
  const t = setup();
  const s = await connected(t);
  s.push(pub('topic:progress:1', 'c1', 7, '{"pct":70}'));
  s.push({ type: 'joined', stream: 'topic:progress:1', epoch: 'c1', offset: 7, latest: true });
  assert.deepEqual(datas(t.seen.publication), ['{"pct":70}']);
  assert.deepEqual(t.seen.joined, [{ stream: 'topic:progress:1', epoch: 'c1', offset: 7, recovered: undefined, gap: undefined, latest: true }]);
  assert.deepEqual(t.seen.unrecovered, []);
  // Reconnecting after several updates: the latest again before joined, which says it could
  // not replay them all but gave the latest: the page is current, nothing to refetch.
  s.drop();
  await waitFor('a reconnect', () => t.transport.sockets.length === 2);
  const s2 = t.transport.last;
  s2.accept();
  s2.push(pub('topic:progress:1', 'c1', 9, '{"pct":90}'));
  s2.push({ type: 'joined', stream: 'topic:progress:1', epoch: 'c1', offset: 9, recovered: false, gap: 'trimmed', latest: true });
  assert.deepEqual(datas(t.seen.publication), ['{"pct":70}', '{"pct":90}']);
  assert.equal(t.seen.joined[1].recovered, false);
  assert.deepEqual(t.seen.unrecovered, []);
  // Without the latest (none kept any more, or a gateway from before `latest`): a gap.
  s2.drop();
  await waitFor('a second reconnect', () => t.transport.sockets.length === 3);
  const s3 = t.transport.last;
  s3.accept();
  s3.push({ type: 'joined', stream: 'topic:progress:1', epoch: 'c2', offset: 0, recovered: false, gap: 'epoch' });
  assert.deepEqual(t.seen.unrecovered, [{ stream: 'topic:progress:1', gap: 'epoch', epoch: 'c2', offset: 0 }]);
  t.client.disconnect();
});

test('a reconnect sends every position in wsgate_recover, keeping the URL query', async () => {
  const t = setup({ url: 'ws://gw.test/ws?room=7&wsgate_recover=stale' });
  const s = await connected(t);
  assert.equal(s.url, 'ws://gw.test/ws?room=7', 'a stale parameter from the URL is not sent');
  s.push({ type: 'joined', stream: 'topic:a', epoch: 'ea', offset: 0 });
  s.push(pub('topic:a', 'ea', 1));
  s.push({ type: 'joined', stream: 'user:u', epoch: 'eu', offset: 10 });
  s.push(pub('user:u', 'eu', 11));
  s.push(pub('user:u', 'eu', 12));
  s.drop(1006);
  await waitFor('a reconnect', () => t.transport.sockets.length === 2);
  const s2 = t.transport.last;
  assert.match(s2.url, /^ws:\/\/gw\.test\/ws\?room=7&wsgate_recover=[A-Za-z0-9_-]+$/);
  assert.deepEqual(s2.recover(), { 'topic:a': { epoch: 'ea', offset: 1 }, 'user:u': { epoch: 'eu', offset: 12 } });
  t.client.disconnect();
});

// ---- several gateways (a cluster) ----------------------------------------------------------

const GATEWAYS = ['ws://gw-a.test/ws', 'ws://gw-b.test/ws?region=2', 'wss://gw-c.test/ws'];
const base = (url) => url.replace(/[?&]wsgate_recover=[^&#]*/, '');

test('an array of URLs: the first connect uses the first, each reconnect the next, round robin', async () => {
  const t = setup({ url: GATEWAYS });
  assert.deepEqual(t.client.urls, GATEWAYS);
  assert.equal(t.client.url, GATEWAYS[0]);
  const used = [];
  await connected(t);
  for (let i = 0; i < 7; i++) {
    const s = t.transport.last;
    if (i > 0) s.accept();
    used.push(base(s.url));
    assert.equal(t.client.url, GATEWAYS[i % 3], 'client.url is the URL of the latest attempt');
    if (i % 2) t.client.dropSocket('test');
    else s.drop(i === 0 ? 1001 : 4000, 'gone');
    await waitFor(`attempt ${i + 2}`, () => t.transport.sockets.length === i + 2);
  }
  assert.deepEqual(used, [0, 1, 2, 0, 1, 2, 0].map((i) => GATEWAYS[i]));
  // The state events say which gateway each step was about.
  const connectedUrls = t.seen.state.filter((e) => e.state === 'connected').map((e) => e.url);
  assert.deepEqual(connectedUrls, used);
  const connectingUrls = t.seen.state.filter((e) => e.state === 'connecting').map((e) => e.url);
  assert.deepEqual(connectingUrls, [...used, GATEWAYS[1]]);
  const disconnectedUrls = t.seen.state.filter((e) => e.state === 'disconnected').map((e) => e.url);
  assert.deepEqual(disconnectedUrls, used);
  t.client.disconnect();
  // A gateway that refuses (1006 before opening) is skipped for the next one too.
  const r = setup({ url: GATEWAYS.slice(0, 2) });
  r.client.connect();
  await waitFor('attempt 1', () => r.transport.sockets.length === 1);
  r.transport.last.drop(1006);
  await waitFor('attempt 2', () => r.transport.sockets.length === 2);
  assert.equal(base(r.transport.last.url), GATEWAYS[1]);
  r.transport.last.drop(1006);
  await waitFor('attempt 3', () => r.transport.sockets.length === 3);
  assert.equal(base(r.transport.last.url), GATEWAYS[0]);
  r.client.disconnect();
});

test('a reconnect to the second gateway sends the positions and the JWT, and recovers there', async () => {
  let n = 0;
  const t = setup({ url: GATEWAYS.slice(0, 2), token: () => `tok${++n}` });
  const a = await connected(t);
  assert.equal(a.url, GATEWAYS[0], 'no positions yet: no wsgate_recover');
  assert.deepEqual(a.protocols, ['wsgate.stream.v1', 'wsgate.jwt', 'tok1']);
  a.push({ type: 'joined', stream: 'user:u', epoch: 'r1', offset: 0 });
  a.push({ type: 'joined', stream: 'topic:t', epoch: 'r2', offset: 7 });
  for (let i = 1; i <= 3; i++) a.push(pub('user:u', 'r1', i));
  a.push(pub('topic:t', 'r2', 8));
  a.drop(1001, 'gateway going away');

  await waitFor('the reconnect', () => t.transport.sockets.length === 2);
  const b = t.transport.last;
  assert.match(b.url, /^ws:\/\/gw-b\.test\/ws\?region=2&wsgate_recover=[A-Za-z0-9_-]+$/);
  assert.deepEqual(b.recover(), { 'topic:t': { epoch: 'r2', offset: 8 }, 'user:u': { epoch: 'r1', offset: 3 } });
  assert.deepEqual(b.protocols, ['wsgate.stream.v1', 'wsgate.jwt', 'tok2']);
  b.accept();
  // Gateway B shares the history (Redis engine): it replays from offset 3 (overlapping by one).
  for (let i = 3; i <= 5; i++) b.push(pub('user:u', 'r1', i));
  b.push({ type: 'joined', stream: 'user:u', epoch: 'r1', offset: 5, recovered: true });
  b.push({ type: 'joined', stream: 'topic:t', epoch: 'r2', offset: 8, recovered: true });
  b.push(pub('user:u', 'r1', 6));
  assert.deepEqual(datas(t.seen.publication), ['m1', 'm2', 'm3', 'm8', 'm4', 'm5', 'm6']);
  assert.deepEqual(t.seen.unrecovered, []);
  assert.deepEqual(t.seen.state.filter((e) => e.state === 'connected').map((e) => e.url), GATEWAYS.slice(0, 2));

  // Back on the first gateway, with the positions learnt on the second.
  b.drop(4000, 'cut');
  await waitFor('the next reconnect', () => t.transport.sockets.length === 3);
  const a2 = t.transport.last;
  assert.equal(base(a2.url), GATEWAYS[0]);
  assert.deepEqual(a2.recover(), { 'topic:t': { epoch: 'r2', offset: 8 }, 'user:u': { epoch: 'r1', offset: 6 } });
  assert.deepEqual(a2.protocols, ['wsgate.stream.v1', 'wsgate.jwt', 'tok3']);
  a2.accept();
  // A gateway with the memory engine has its own epochs: the client is told it did not recover.
  a2.push({ type: 'joined', stream: 'user:u', epoch: 'm9', offset: 0, recovered: false, gap: 'epoch' });
  assert.deepEqual(t.seen.unrecovered, [{ stream: 'user:u', gap: 'epoch', epoch: 'm9', offset: 0 }]);
  a2.push(pub('user:u', 'm9', 1, 'fresh'));
  assert.deepEqual(datas(t.seen.publication).slice(-1), ['fresh']);
  t.client.disconnect();
});

test('a single URL is used for every attempt; a failed token does not move to the next URL', async () => {
  const one = setup();
  assert.deepEqual(one.client.urls, ['ws://gw.test/ws']);
  await connected(one);
  for (let i = 1; i <= 3; i++) {
    const s = one.transport.last;
    if (i > 1) s.accept();
    assert.equal(s.url, 'ws://gw.test/ws');
    assert.equal(one.seen.state.at(-1).url, 'ws://gw.test/ws');
    s.drop(4000);
    await waitFor(`attempt ${i + 1}`, () => one.transport.sockets.length === i + 1);
  }
  one.client.disconnect();

  let calls = 0;
  const t = setup({
    url: GATEWAYS.slice(0, 2),
    token: () => {
      if (++calls === 1) throw new Error('login service down');
      return 'ok';
    },
  });
  t.client.connect();
  await waitFor('the retry', () => t.transport.sockets.length === 1);
  assert.equal(t.transport.last.url, GATEWAYS[0], 'the first socket still goes to the first URL');
  const failed = t.seen.state.find((e) => e.state === 'disconnected');
  assert.equal(failed.url, GATEWAYS[0]);
  t.client.disconnect();
});

test('autoAck sends one ack frame with the ids, after the handlers ran', async () => {
  const t = setup({ positions: { 'user:1': { epoch: 'e', offset: 1 } } });
  const s = await connected(t);
  const order = [];
  t.client.on('publication', (e) => order.push(`handled ${e.ack}`));
  s.push(pub('user:1', 'e', 2, 'a', { ack: 11 }));
  s.push({ type: 'message', data: 'b', ack: 12 });
  s.push(pub('user:1', 'e', 3, 'c', { ack: 13 }));
  s.push(pub('user:1', 'e', 1, 'dup', { ack: 14 })); // a duplicate: acknowledged, not delivered
  assert.deepEqual(s.frames('ack'), [], 'acks are gathered, not sent one by one');
  await waitFor('the ack frame', () => s.frames('ack').length > 0);
  await sleep(20);
  assert.deepEqual(s.frames('ack'), [{ type: 'ack', ids: [11, 12, 13, 14] }]);
  assert.deepEqual(order, ['handled 11', 'handled 13']);
  assert.deepEqual(datas(t.seen.message), ['b']);
  assert.equal(t.seen.message[0].ack, 12);
  t.client.disconnect();
});

test('autoAck waits for a handler promise and skips a handler that threw', async () => {
  const t = setup();
  const s = await connected(t);
  let release;
  const gate = new Promise((r) => (release = r));
  t.client.on('message', (e) => (e.data === 'slow' ? gate : undefined));
  t.client.on('message', (e) => {
    if (e.data === 'bad') throw new Error('handler failed (expected by the test)');
  });
  // A throwing handler is rethrown from a timer (so the platform reports it as uncaught); catch
  // that timer's error here instead of letting it fail the test run.
  const uncaught = [];
  const realSetTimeout = globalThis.setTimeout;
  try {
    s.push({ type: 'message', data: 'slow', ack: 1 });
    globalThis.setTimeout = (fn) => {
      try {
        fn();
      } catch (err) {
        uncaught.push(err.message);
      }
    };
    s.push({ type: 'message', data: 'bad', ack: 2 });
    globalThis.setTimeout = realSetTimeout;
    s.push({ type: 'message', data: 'ok', ack: 3 });
    await sleep(30);
    assert.deepEqual(s.frames('ack'), [{ type: 'ack', ids: [3] }]);
    release();
    await waitFor('the slow ack', () => s.frames('ack').length === 2);
    assert.deepEqual(s.frames('ack')[1], { type: 'ack', ids: [1] });
    assert.deepEqual(uncaught, ['handler failed (expected by the test)'], 'a throwing handler is reported, not swallowed');
  } finally {
    globalThis.setTimeout = realSetTimeout;
    t.client.disconnect();
  }
});

test('manual acks (autoAck: false) are batched, once per id, per connection', async () => {
  const t = setup({ autoAck: false });
  const s = await connected(t);
  s.push({ type: 'message', data: 'x', ack: 5 });
  s.push({ type: 'message', data: 'y', ack: 6 });
  s.push({ type: 'message', data: 'z' });
  await sleep(20);
  assert.deepEqual(s.frames('ack'), []);
  assert.equal(t.client.ack(6), true);
  assert.equal(t.client.ack(5), true);
  assert.equal(t.client.ack(5), false, 'already acknowledged');
  assert.equal(t.client.ack(99), false, 'never received');
  await waitFor('the ack frame', () => s.frames('ack').length > 0);
  assert.deepEqual(s.frames('ack'), [{ type: 'ack', ids: [6, 5] }]);
  s.push({ type: 'message', data: 'w', ack: 7 });
  s.drop();
  assert.equal(t.client.ack(7), false, 'the id died with its connection');
  t.client.disconnect();
});

test('a server that did not agree on the subprotocol gives plain messages', async () => {
  for (const answered of ['', 'wsgate.jwt']) {
    const t = setup({ token: 'jwt', pingInterval: 5 });
    const s = await connected(t, answered);
    s.push('{"type":"publication","stream":"user:1","epoch":"e","offset":1,"data":"x"}');
    s.push('hello');
    s.push(Uint8Array.from([1, 2, 3]).buffer);
    s.drop(); // no warning again on the next connection
    await waitFor('a reconnect', () => t.transport.sockets.length === 2);
    t.transport.last.accept(answered);
    t.transport.last.push('again');
    assert.deepEqual(datas(t.seen.message), [
      '{"type":"publication","stream":"user:1","epoch":"e","offset":1,"data":"x"}',
      'hello',
      Uint8Array.from([1, 2, 3]),
      'again',
    ]);
    assert.ok(t.seen.message.every((m) => m.ack === undefined));
    assert.deepEqual(t.seen.publication, []);
    assert.deepEqual(t.client.positions(), {});
    assert.equal(t.seen.error.length, 1, 'one warning per client');
    assert.equal(t.seen.error[0].kind, 'not-agreed');
    assert.match(t.seen.error[0].message, /did not agree on wsgate\.stream\.v1/);
    assert.equal(t.seen.state.find((e) => e.state === 'connected').streams, false);
    // No JSON wrapping and no pings on a plain connection.
    t.client.send('raw');
    t.client.send(Uint8Array.from([7, 8]));
    await sleep(20);
    assert.equal(t.transport.last.sent[0], 'raw');
    assert.deepEqual(new Uint8Array(t.transport.last.sent[1]), Uint8Array.from([7, 8]));
    assert.equal(t.transport.last.sent.length, 2);
    t.client.disconnect();
  }
});

test('an unknown subprotocol (mini-programs) is assumed agreed until a frame says otherwise', async () => {
  const agreed = setup();
  const s = await connected(agreed, null);
  s.push({ type: 'joined', stream: 'user:1', epoch: 'e', offset: 0 });
  s.push(pub('user:1', 'e', 1, 'x'));
  s.push('{"type":"chat"}'); // after confirmation, unknown types are ignored (newer protocol)
  assert.deepEqual(datas(agreed.seen.publication), ['x']);
  assert.deepEqual(agreed.seen.error, []);
  agreed.client.disconnect();

  const plain = setup();
  const p = await connected(plain, null);
  p.push('{"type":"chat","text":"hi"}');
  p.push('second');
  assert.deepEqual(datas(plain.seen.message), ['{"type":"chat","text":"hi"}', 'second']);
  assert.equal(plain.seen.error[0].kind, 'not-agreed');
  plain.client.disconnect();
});

test('send wraps text and binary in message frames', async () => {
  const t = setup();
  assert.throws(() => t.client.send('early'), /not connected/);
  const s = await connected(t);
  t.client.send('hi');
  t.client.send(Uint8Array.from([0, 255, 1]));
  t.client.send(Uint8Array.from([9, 1, 2, 9]).subarray(1, 3).buffer.slice(1, 3));
  assert.deepEqual(s.frames(), [
    { type: 'message', data: 'hi' },
    { type: 'message', binary: 'AP8B' },
    { type: 'message', binary: 'AQI=' },
  ]);
  assert.throws(() => t.client.send({ a: 1 }), /JSON\.stringify/);
  t.client.disconnect();
});

test('binary payloads arrive as bytes; gateway errors are reported', async () => {
  const t = setup();
  const s = await connected(t);
  s.push({ type: 'message', binary: Buffer.from([1, 2, 250]).toString('base64') });
  s.push(pub('topic:b', 'e', 1, undefined, { data: undefined, binary: 'AAE=' }));
  s.push({ type: 'error', message: 'unknown type "nope"' });
  s.push({ type: 'pong' });
  s.push('not json');
  assert.deepEqual(t.seen.message[0].data, Uint8Array.from([1, 2, 250]));
  assert.deepEqual(t.seen.publication[0].data, Uint8Array.from([0, 1]));
  assert.deepEqual(t.seen.error.map((e) => e.kind), ['gateway', 'bad-frame']);
  assert.match(t.seen.error[0].message, /unknown type "nope"/);
  t.client.disconnect();
});

test('disconnect stops reconnecting; dropSocket reconnects at once', async () => {
  const t = setup({ backoff: { min: 5000, max: 5000, jitter: 0 } });
  const s = await connected(t);
  t.client.dropSocket('network changed');
  assert.deepEqual(s.closed, { code: 1000, reason: 'network changed' });
  const dropped = t.seen.state.at(-1);
  assert.equal(dropped.state, 'disconnected');
  assert.equal(dropped.delay, 0);
  await waitFor('the immediate reconnect', () => t.transport.sockets.length === 2);
  t.transport.last.accept();
  t.client.disconnect();
  assert.deepEqual(t.transport.last.closed, { code: 1000, reason: 'client disconnect' });
  assert.equal(t.client.state, 'closed');
  t.transport.last.drop(1000); // a late close event changes nothing
  await sleep(20);
  assert.equal(t.transport.sockets.length, 2);
  assert.equal(t.client.state, 'closed');
  // Positions survive: connect() again recovers.
  t.client.connect();
  await waitFor('a new socket', () => t.transport.sockets.length === 3);
});

test('a state listener can stop reconnecting on a close code', async () => {
  const t = setup();
  t.client.on('state', (s) => s.state === 'disconnected' && s.code === 4003 && t.client.disconnect());
  const s = await connected(t);
  s.drop(4003, 'banned');
  await sleep(20);
  assert.equal(t.client.state, 'closed');
  assert.equal(t.transport.sockets.length, 1, 'no reconnect');
});

test('backoff grows while connections fail and resets once one stays up', async () => {
  const t = setup({ backoff: { min: 10, max: 40, factor: 2, jitter: 0 } });
  t.client.connect();
  for (let i = 1; i <= 4; i++) {
    await waitFor(`attempt ${i}`, () => t.transport.sockets.length === i);
    t.transport.last.drop(1006); // refused before opening
  }
  const delays = t.seen.state.filter((e) => e.state === 'disconnected').map((e) => e.delay);
  assert.deepEqual(delays, [10, 20, 40, 40]);
  await waitFor('attempt 5', () => t.transport.sockets.length === 5);
  t.transport.last.accept();
  t.transport.last.push({ type: 'joined', stream: 'user:1', epoch: 'e', offset: 0 });
  t.transport.last.drop(4000);
  assert.equal(t.seen.state.at(-1).delay, 10, 'a connection that received a frame resets the backoff');
  t.client.disconnect();
});

test('a ping that gets no answer replaces the socket', async () => {
  const t = setup({ pingInterval: 15 });
  const s = await connected(t);
  await waitFor('a ping', () => s.frames('ping').length === 1);
  s.push({ type: 'pong' });
  await waitFor('a second ping', () => s.frames('ping').length === 2);
  // No answer this time.
  await waitFor('the replacement socket', () => t.transport.sockets.length === 2, 1000);
  assert.match(s.closed.reason, /no frame from the gateway/);
  t.client.disconnect();
});

test('positions load from and save to storage', async () => {
  const saved = [];
  const storage = {
    get: async () => ({ 'user:1': { epoch: 'e', offset: 4 }, bogus: { epoch: 1 } }),
    set: (p) => saved.push(p),
  };
  const t = setup({ storage, positions: { 'topic:x': { epoch: 'x', offset: 1 } } });
  const s = await connected(t);
  assert.deepEqual(s.recover(), { 'topic:x': { epoch: 'x', offset: 1 }, 'user:1': { epoch: 'e', offset: 4 } });
  s.push(pub('user:1', 'e', 5));
  assert.deepEqual(saved.at(-1), { 'topic:x': { epoch: 'x', offset: 1 }, 'user:1': { epoch: 'e', offset: 5 } });
  assert.equal(t.client.forget('topic:x'), true);
  assert.equal(t.client.forget('topic:x'), false);
  assert.deepEqual(saved.at(-1), { 'user:1': { epoch: 'e', offset: 5 } });
  t.client.disconnect();
});

test('positions left out of a capped URL are reported unrecovered', async () => {
  const positions = {};
  for (let i = 0; i < 50; i++) positions[`topic:t${i}`] = { epoch: 'e', offset: i };
  const t = setup({ positions, maxRecoverLength: 300 });
  const s = await connected(t);
  const sent = Object.keys(s.recover());
  assert.ok(sent.length < 50 && sent.includes('topic:t49'));
  s.push({ type: 'joined', stream: 'topic:t0', epoch: 'e', offset: 9 });
  s.push({ type: 'joined', stream: 'topic:t49', epoch: 'e', offset: 49, recovered: true });
  assert.deepEqual(t.seen.unrecovered, [{ stream: 'topic:t0', gap: 'unsent', epoch: 'e', offset: 9 }]);
  t.client.disconnect();
});

test('a failing token function is reported and retried', async () => {
  let calls = 0;
  const t = setup({
    token: () => {
      if (++calls === 1) throw new Error('login service down');
      return 'ok';
    },
  });
  t.client.connect();
  await waitFor('the retry', () => t.transport.sockets.length === 1);
  assert.equal(t.seen.error[0].kind, 'token');
  assert.match(t.seen.error[0].message, /login service down/);
  assert.deepEqual(t.transport.last.protocols, ['wsgate.stream.v1', 'wsgate.jwt', 'ok']);
  t.client.disconnect();
});

test('bad arguments fail with a message saying what to do', () => {
  assert.throws(() => new WsgateClient('http://x/ws', { transport: new FakeTransport() }), /ws:\/\/ or wss:\/\//);
  assert.throws(() => new WsgateClient([], { transport: new FakeTransport() }), /non-empty array/);
  assert.throws(() => new WsgateClient(['ws://x/ws', 'http://y/ws'], { transport: new FakeTransport() }), /got "http:\/\/y\/ws"/);
  assert.throws(() => new WsgateClient(['ws://x/ws', 7], { transport: new FakeTransport() }), /ws:\/\/ or wss:\/\//);
  assert.throws(() => new WsgateClient('ws://x/ws', { transport: {} }), /open\(url, protocols\)/);
  const t = setup();
  assert.throws(() => t.client.on('publications', () => {}), /unknown event 'publications'/);
  assert.throws(() => browserTransport(undefined).open('ws://x', []), /no global WebSocket/);
  assert.throws(() => wxTransport(undefined), /wx\.connectSocket is not available/);
});

// ---- the mini-program adapters -------------------------------------------------------------

/** A fake `wx`/`uni`: connectSocket returns a task whose callbacks the test fires. */
function fakeMiniProgram({ returnTaskOnlyWithCallback = false } = {}) {
  const api = { calls: [], tasks: [] };
  api.connectSocket = (options) => {
    api.calls.push(options);
    const handlers = {};
    const task = {
      sent: [],
      closed: null,
      onOpen: (fn) => (handlers.open = fn),
      onMessage: (fn) => (handlers.message = fn),
      onClose: (fn) => (handlers.close = fn),
      onError: (fn) => (handlers.error = fn),
      send: ({ data }) => task.sent.push(data),
      close: ({ code, reason }) => (task.closed = { code, reason }),
      fire: (name, res) => handlers[name](res),
    };
    api.tasks.push(task);
    if (returnTaskOnlyWithCallback && !options.complete && !options.success) return undefined;
    return task;
  };
  return api;
}

test('the wx adapter maps SocketTask callbacks and reads the subprotocol header', async () => {
  assert.equal(headerProtocol({ 'Sec-WebSocket-Protocol': 'wsgate.stream.v1' }), 'wsgate.stream.v1');
  assert.equal(headerProtocol({ 'sec-websocket-protocol': ' wsgate.jwt ' }), 'wsgate.jwt');
  assert.equal(headerProtocol({ other: 'x' }), null);
  assert.equal(headerProtocol(undefined), null);

  const wx = fakeMiniProgram();
  const client = new WsgateClient('wss://gw.test/ws', { transport: wxTransport(wx, { timeout: 5000 }), token: 'T', pingInterval: 0, backoff: FAST });
  const got = [];
  const states = [];
  client.on('publication', (e) => got.push(e.data));
  client.on('state', (e) => states.push(e));
  client.connect();
  await waitFor('connectSocket', () => wx.tasks.length === 1);
  const call = wx.calls[0];
  assert.equal(call.url, 'wss://gw.test/ws');
  assert.deepEqual(call.protocols, ['wsgate.stream.v1', 'wsgate.jwt', 'T']);
  assert.equal(call.timeout, 5000);
  const task = wx.tasks[0];
  task.fire('open', { header: { 'Sec-WebSocket-Protocol': 'wsgate.stream.v1' } });
  assert.equal(states.at(-1).protocol, 'wsgate.stream.v1');
  task.fire('message', { data: JSON.stringify(pub('user:1', 'e', 1, 'hello', { ack: 3 })) });
  assert.deepEqual(got, ['hello']);
  await waitFor('the ack', () => task.sent.length === 1);
  assert.deepEqual(JSON.parse(task.sent[0]), { type: 'ack', ids: [3] });
  task.fire('close', { code: 4000, reason: 'test cut' });
  assert.equal(states.at(-1).code, 4000);
  assert.equal(states.at(-1).reason, 'test cut');
  await waitFor('a reconnect', () => wx.tasks.length === 2);
  // A platform that reports a failure with onError only still leads to a reconnect.
  wx.tasks[1].fire('error', { errMsg: 'connectSocket:fail timeout' });
  await waitFor('a reconnect after onError', () => wx.tasks.length === 3, 3000);
  assert.match(states.find((s) => s.state === 'disconnected' && s.code === 1006).reason, /timeout/);
  client.disconnect();
  assert.deepEqual(wx.tasks[2].closed, { code: 1000, reason: 'client disconnect' });
});

test('the uni adapter passes complete so uni returns the SocketTask', async () => {
  const uni = fakeMiniProgram({ returnTaskOnlyWithCallback: true });
  const client = new WsgateClient('wss://gw.test/ws', { transport: uniTransport(uni), pingInterval: 0, backoff: FAST });
  const got = [];
  client.on('message', (e) => got.push(e.data));
  client.connect();
  await waitFor('connectSocket', () => uni.tasks.length === 1);
  assert.equal(typeof uni.calls[0].complete, 'function');
  uni.tasks[0].fire('open', {}); // no header: the subprotocol is assumed agreed
  uni.tasks[0].fire('message', { data: '{"type":"message","data":"hi"}' });
  assert.deepEqual(got, ['hi']);
  client.disconnect();
});
