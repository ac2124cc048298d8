#!/usr/bin/env node
// node-hub: the WebSocket broadcast hub a team writes by hand today with Node.js and `ws`.
//
// One of the two peer servers wsgate's load tool (wsgate-bench) compares wsgate against; the
// other is the Rust `plain-hub`. Both implement the same contract (see README.md):
//
//   node hub.js --listen 127.0.0.1:0 --http 127.0.0.1:0
//   stdout once both servers listen:  ready ws=127.0.0.1:PORT http=127.0.0.1:PORT
//   WebSocket on --listen (any path; ?topic=NAME, repeatable, subscribes the socket); every
//   text/binary message is echoed to its sender with the same opcode.
//   HTTP on --http:  POST /broadcast, POST /publish?topic=NAME -> {"recipients":N}
//                    GET /stats -> {"connections":N,"dropped":N}
//
// Deliberately plain: WebSocketServer + http.createServer + a for-of over wss.clients. The only
// guard is the usual one: a socket with more than 1 MiB already buffered is skipped (and counted
// in `dropped`) so a stalled client cannot eat all memory. Nothing is logged per connection.

'use strict';

const http = require('node:http');
const { isUtf8 } = require('node:buffer');
const { WebSocketServer, WebSocket } = require('ws');

const MAX_BUFFERED = 1024 * 1024; // bytes queued on one socket before broadcasts to it drop
const MAX_BODY = 2 * 1024 * 1024; // largest POST body accepted (same as plain-hub's axum default)

function fail(message) {
  process.stderr.write(`node-hub: ${message}\n`);
  process.exit(2);
}

function usage() {
  return 'usage: node hub.js --listen HOST:PORT --http HOST:PORT';
}

function parseHostPort(flag, value) {
  if (value === undefined) fail(`${flag} needs a HOST:PORT value\n${usage()}`);
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) fail(`${flag} ${value}: expected HOST:PORT (e.g. 127.0.0.1:0)\n${usage()}`);
  return { host: m[1] ?? m[2], port };
}

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i++) {
    let flag = argv[i];
    let value;
    const eq = flag.indexOf('=');
    if (flag.startsWith('--') && eq !== -1) {
      value = flag.slice(eq + 1);
      flag = flag.slice(0, eq);
    } else if (flag === '--listen' || flag === '--http') {
      value = argv[++i];
    }
    if (flag === '--help' || flag === '-h') {
      process.stdout.write(`${usage()}\n`);
      process.exit(0);
    } else if (flag === '--listen' || flag === '--http') {
      args[flag.slice(2)] = parseHostPort(flag, value);
    } else {
      fail(`unknown argument ${argv[i]}\n${usage()}`);
    }
  }
  if (!args.listen) fail(`--listen is required\n${usage()}`);
  if (!args.http) fail(`--http is required\n${usage()}`);
  return args;
}

function formatAddress(addr) {
  return addr.family === 'IPv6' ? `[${addr.address}]:${addr.port}` : `${addr.address}:${addr.port}`;
}

const args = parseArgs(process.argv.slice(2));

// topic name -> Set of sockets subscribed to it
const topics = new Map();
let dropped = 0;

const wss = new WebSocketServer({
  host: args.listen.host,
  port: args.listen.port,
  perMessageDeflate: false,
});

wss.on('connection', (ws, req) => {
  let names = [];
  try {
    names = new URL(req.url, 'http://hub').searchParams.getAll('topic').filter((t) => t !== '');
  } catch {
    // an unparsable request target: no topics
  }
  for (const name of names) {
    let set = topics.get(name);
    if (!set) topics.set(name, (set = new Set()));
    set.add(ws);
  }

  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {}); // protocol errors close the socket; nothing to log
  ws.on('close', () => {
    for (const name of names) {
      const set = topics.get(name);
      if (!set) continue;
      set.delete(ws);
      if (set.size === 0) topics.delete(name);
    }
  });
});

// Sends `body` as one text frame to each socket; returns how many it was queued on.
function sendAll(sockets, body) {
  let recipients = 0;
  for (const ws of sockets) {
    if (ws.readyState !== WebSocket.OPEN) continue;
    if (ws.bufferedAmount > MAX_BUFFERED) {
      dropped++;
      continue;
    }
    ws.send(body, { binary: false });
    recipients++;
  }
  return recipients;
}

function reply(res, status, obj) {
  const json = JSON.stringify(obj);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(json),
  });
  res.end(json);
}

function readBody(req, res, onBody) {
  const chunks = [];
  let size = 0;
  let tooLarge = false;
  req.on('data', (chunk) => {
    if (tooLarge) return;
    size += chunk.length;
    if (size > MAX_BODY) {
      tooLarge = true;
      chunks.length = 0;
      return;
    }
    chunks.push(chunk);
  });
  req.on('end', () => {
    if (tooLarge) return reply(res, 413, { error: 'body too large' });
    const body = Buffer.concat(chunks, size);
    if (!isUtf8(body)) return reply(res, 400, { error: 'the body must be UTF-8 text' });
    onBody(body);
  });
  req.on('error', () => {});
}

const api = http.createServer((req, res) => {
  let url;
  try {
    url = new URL(req.url, 'http://hub');
  } catch {
    return reply(res, 400, { error: 'bad request target' });
  }
  if (req.method === 'POST' && url.pathname === '/broadcast') {
    readBody(req, res, (body) => reply(res, 200, { recipients: sendAll(wss.clients, body) }));
  } else if (req.method === 'POST' && url.pathname === '/publish') {
    const topic = url.searchParams.get('topic');
    if (!topic) {
      req.resume();
      return reply(res, 400, { error: 'missing ?topic=NAME' });
    }
    readBody(req, res, (body) => reply(res, 200, { recipients: sendAll(topics.get(topic) ?? [], body) }));
  } else if (req.method === 'GET' && url.pathname === '/stats') {
    reply(res, 200, { connections: wss.clients.size, dropped });
  } else {
    req.resume();
    reply(res, 404, { error: 'not found' });
  }
});
api.on('clientError', (_err, socket) => {
  if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
  else socket.destroy();
});

function listenFailed(flag, addr) {
  return (err) => fail(`cannot listen on ${addr.host}:${addr.port} (${flag}): ${err.message}`);
}

let listening = 0;
function onListening() {
  if (++listening < 2) return;
  process.stdout.write(`ready ws=${formatAddress(wss.address())} http=${formatAddress(api.address())}\n`);
}

wss.once('error', listenFailed('--listen', args.listen));
wss.once('listening', () => {
  wss.removeAllListeners('error');
  wss.on('error', () => {});
  onListening();
});
api.once('error', listenFailed('--http', args.http));
api.listen(args.http.port, args.http.host, () => {
  api.removeAllListeners('error');
  api.on('error', () => {});
  onListening();
});

for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));
