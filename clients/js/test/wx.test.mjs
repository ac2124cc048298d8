// End to end against a real gateway, through the WeChat mini-program adapter: a fake `wx` whose
// connectSocket wraps a real WebSocket (the `ws` package) in the SocketTask API.
//
//   node test/wx.test.mjs --ws ws://127.0.0.1:PORT/ws --api http://127.0.0.1:PORT2 --secret JWTSECRET [--api-key KEY]
//
// The gateway must run with --jwt-secret JWTSECRET and the stream rules
//   users keep-* history=1000 age=10m
//   users trim-* history=3 age=10m
//
// Scenario A: 300 numbered messages to user keep-<random> while the connection is cut three
// times by the gateway (force-offline, code 4000) and once abruptly by the client (TCP reset,
// no close frame): the client delivers "1".."300" exactly once each, in order, and every
// reconnect's `joined` says recovered:true.
// Scenario B: user trim-<random> misses more than the history keeps while disconnected: the
// reconnect reports `unrecovered` with gap "trimmed".
//
// Exit codes: 0 passed, 1 a check failed, 2 bad arguments, 3 the run took over 60 s.

import WebSocket from 'ws';

import { WsgateClient } from '../src/client.js';
import { wxTransport } from '../src/adapters/wx.js';
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
  waitFor,
} from './e2e-common.mjs';

const USAGE = 'node test/wx.test.mjs --ws ws://HOST:PORT/ws --api http://HOST:PORT --secret JWTSECRET [--api-key KEY]';
const args = parseArgs(USAGE);
deadline(60_000, 'wx.test.mjs');
const api = new Api(args.api, args.apiKey);

/**
 * A stand-in for the mini-program `wx` object, with just connectSocket: each SocketTask wraps
 * a `ws` WebSocket. `onOpen` gives the response headers, as recent base libraries do.
 */
function fakeWx() {
  const tasks = [];
  return {
    tasks,
    connectSocket({ url, protocols, header, complete }) {
      const ws = new WebSocket(url, protocols, { headers: header });
      ws.binaryType = 'arraybuffer';
      const on = { open: [], message: [], close: [], error: [] };
      let responseHeaders = {};
      ws.on('upgrade', (res) => (responseHeaders = res.headers));
      ws.on('open', () => on.open.forEach((fn) => fn({ header: responseHeaders, profile: {} })));
      ws.on('message', (data, isBinary) => on.message.forEach((fn) => fn({ data: isBinary ? data : data.toString('utf8') })));
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
        /** Test only: drop the TCP connection with no close frame, like a phone losing its network. */
        kill() {
          ws.terminate();
        },
      };
      tasks.push(task);
      if (complete) setTimeout(() => complete({ errMsg: 'connectSocket:ok' }), 0);
      return task;
    },
  };
}

/** A client for `userId` over the fake wx, recording everything it emits. */
function startClient(userId) {
  const wx = fakeWx();
  const client = new WsgateClient(args.ws, {
    transport: wxTransport(wx),
    token: () => makeJwt(args.secret, userId),
    pingInterval: 5000,
  });
  const rec = { wx, client, got: [], joined: [], unrecovered: [], states: [], errors: [] };
  client.on('publication', (e) => {
    if (e.stream === `user:${userId}`) rec.got.push(e.data);
  });
  client.on('message', (e) => rec.errors.push({ kind: 'unexpected-message', message: `a message outside the stream: ${JSON.stringify(e.data)}` }));
  client.on('joined', (e) => rec.joined.push(e));
  client.on('unrecovered', (e) => rec.unrecovered.push(e));
  client.on('state', (e) => rec.states.push(e));
  client.on('error', (e) => rec.errors.push(e));
  return rec;
}

/** The client's last state, to explain a failure to connect (a 401 shows here as its error). */
function lastState(rec) {
  const s = rec.states[rec.states.length - 1];
  return s ? `last state ${JSON.stringify(s)}` : 'no state event';
}

function checkNoErrors(rec) {
  if (rec.errors.length) throw new Error(`the client reported errors: ${rec.errors.map((e) => `${e.kind}: ${e.message}`).join('; ')}`);
}

async function scenarioA() {
  const N = 300;
  const user = uniqueUser('keep');
  const stream = `user:${user}`;
  const rec = startClient(user);
  const summary = { user, reconnects: 0 };

  await step(`A: ${user} connects with wsgate.stream.v1 and joins ${stream}`, async () => {
    rec.client.connect();
    await waitFor(`the first joined for ${stream}`, () => rec.joined.some((j) => j.stream === stream)).catch((err) => {
      throw new Error(`${err.message}; ${lastState(rec)} (is the gateway running with --jwt-secret and the stream rule "users keep-* history=1000 age=10m"?)`);
    });
    const connected = rec.states.find((s) => s.state === 'connected');
    if (!connected.streams || connected.protocol !== 'wsgate.stream.v1') {
      throw new Error(`the gateway answered subprotocol ${JSON.stringify(connected.protocol)}, not wsgate.stream.v1`);
    }
    checkNoErrors(rec);
  });

  const cuts = cutPoints(N, 4);
  const cutKinds = ['server', 'client', 'server', 'server'];
  await step(`A: publish ${N} messages, cutting the connection at ${cuts.join(', ')} (${cutKinds.join(', ')})`, async () => {
    let joinedBefore = rec.joined.length;
    for (let n = 1; n <= N; n++) {
      const at = cuts.indexOf(n);
      if (at >= 0) {
        // Cut only a connection that is up and joined since the previous cut, so each cut
        // really is one more disconnection.
        await waitFor(`the reconnect before cut ${at + 1}`, () => rec.joined.length >= joinedBefore && rec.client.state === 'connected', 15000);
        // Counted before the cut: the reconnect may be done by the time the cut returns.
        joinedBefore = rec.joined.length + 1;
        if (cutKinds[at] === 'server') {
          await api.forceOffline(user, 4000, 'test cut');
        } else {
          rec.wx.tasks[rec.wx.tasks.length - 1].kill();
        }
      }
      await api.sendToUser(user, String(n));
      await sleep(5);
    }
  });

  await step(`A: the client delivers "1".."${N}" exactly once each, in order`, async () => {
    await waitFor(`${N} messages (have ${rec.got.length})`, () => rec.got.length >= N, 30000);
    await sleep(300); // anything extra (a duplicate) would arrive now
    checkExactlyOnceInOrder(rec.got, N);
  });

  await step('A: every reconnect recovered (joined says recovered:true, no unrecovered event)', async () => {
    const joins = rec.joined.filter((j) => j.stream === stream);
    summary.reconnects = joins.length - 1;
    if (joins.length < 1 + cuts.length) {
      throw new Error(`expected at least ${1 + cuts.length} joined events (1 + ${cuts.length} cuts), got ${joins.length}`);
    }
    if (joins[0].recovered !== undefined) throw new Error(`the first join had no position, yet says recovered: ${joins[0].recovered}`);
    const bad = joins.slice(1).filter((j) => j.recovered !== true);
    if (bad.length) throw new Error(`reconnects that did not recover: ${JSON.stringify(bad)}`);
    if (rec.unrecovered.length) throw new Error(`unrecovered events: ${JSON.stringify(rec.unrecovered)}`);
    const closes = rec.states.filter((s) => s.state === 'disconnected').map((s) => s.code);
    if (closes.filter((c) => c === 4000).length < 3) throw new Error(`expected three closes with code 4000, got codes ${closes.join(', ')}`);
    checkNoErrors(rec);
  });

  rec.client.disconnect();
  summary.positions = rec.client.positions()[stream];
  summary.closeCodes = rec.states.filter((s) => s.state === 'disconnected').map((s) => s.code);
  return summary;
}

async function scenarioB() {
  const user = uniqueUser('trim');
  const stream = `user:${user}`;
  const rec = startClient(user);

  await step(`B: ${user} connects and receives 3 messages`, async () => {
    rec.client.connect();
    await waitFor(`the joined for ${stream}`, () => rec.joined.some((j) => j.stream === stream)).catch((err) => {
      throw new Error(`${err.message}; ${lastState(rec)} (is the stream rule "users trim-* history=3 age=10m" configured?)`);
    });
    for (let n = 1; n <= 3; n++) await api.sendToUser(user, String(n));
    await waitFor('3 messages', () => rec.got.length >= 3);
    checkExactlyOnceInOrder(rec.got, 3);
  });

  await step('B: disconnect(), 10 messages published meanwhile, connect() again: unrecovered, gap "trimmed"', async () => {
    rec.client.disconnect();
    await sleep(200); // let the gateway see the close
    for (let n = 4; n <= 13; n++) await api.sendToUser(user, String(n));
    rec.client.connect();
    const event = await waitFor(`an unrecovered event for ${stream}`, () => rec.unrecovered.find((u) => u.stream === stream));
    if (event.gap !== 'trimmed') throw new Error(`expected gap "trimmed", got ${JSON.stringify(event)}`);
    const join = rec.joined[rec.joined.length - 1];
    if (join.recovered !== false) throw new Error(`the reconnect's joined should say recovered:false: ${JSON.stringify(join)}`);
    if (rec.got.length !== 3) throw new Error(`nothing should be replayed after a trimmed gap, got ${JSON.stringify(rec.got.slice(3))}`);
  });

  await step('B: live messages flow again after the gap', async () => {
    await api.sendToUser(user, '14');
    await waitFor('message 14', () => rec.got.includes('14'));
    checkNoErrors(rec);
  });
  rec.client.disconnect();
  return { user, unrecovered: rec.unrecovered };
}

try {
  const a = await scenarioA();
  const b = await scenarioB();
  console.log(
    `PASSED - wx adapter: scenario A (${a.user}): 300/300 in order, ${a.reconnects} reconnects (close codes ${a.closeCodes.join(', ')}), ` +
      `all recovered, final position ${JSON.stringify(a.positions)}; scenario B (${b.user}): unrecovered ${JSON.stringify(b.unrecovered)}`,
  );
  process.exit(0);
} catch (err) {
  console.error(`FAILED - ${err.message}`);
  process.exit(1);
}
