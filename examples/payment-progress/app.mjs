#!/usr/bin/env node
// The application of the payment-progress example: what is left of the Java service once wsgate
// holds the sockets. Node's standard library only (node:http, fetch, node:crypto).
//
//   node examples/payment-progress/app.mjs [--listen 127.0.0.1:3000] [--ws ws://127.0.0.1:8080/ws]
//       [--api http://127.0.0.1:8082] [--jwt-secret SECRET] [--api-key KEY]
//
// (or the variables APP_LISTEN, WSGATE_WS_URL, WSGATE_API_URL, WSGATE_JWT_SECRET,
// WSGATE_API_KEY). It serves:
//
//   /                        index.html: links to the two pages
//   /checkout.html?order=ID  the QR-checkout page, waiting for its order to be paid
//   /import.html?job=ID      the import page with its progress bar
//   /wsgate/...              the JS client's ES modules, straight from clients/js/src/
//   POST /api/orders         a new order: {id, amount, status, token, ws, pay_url}
//   GET  /api/orders/ID      the order, with a fresh token
//   POST /api/payments/callback   the payment provider's signed callback: marks the order paid
//                                 and pushes {"type":"paid",...} to user order-ID
//   POST /api/imports        starts a job of 10,000 tasks: {id, total, token, ws}
//   GET  /api/imports/ID     the job: {id, done, total, state, elapsed_ms, token, ws}
//   /provider/pay?order=ID   the simulated payment provider: the page the phone opens after
//                            scanning the QR code; its "Pay" button makes the provider call
//                            the callback above over HTTP, signed, as real providers do
//
// A page connects to the gateway with a JWT whose `sub` is `order-<id>` or `import-<job>`: the
// token is the capability to watch that order or job. The gateway's streams (wsgate.toml) give
// those users history (orders) or the latest value (imports). Pushing is one HTTP call,
// POST {api}/api/v1/users/send.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const HERE = dirname(fileURLToPath(import.meta.url));
const PUBLIC = join(HERE, 'public');
const CLIENT_SRC = join(HERE, '..', '..', 'clients', 'js', 'src');
// The same development value as wsgate.toml's jwt_secret.
const DEV_JWT_SECRET = 'payment-progress-DEVELOPMENT-ONLY-secret-do-not-deploy';
// The secret the payment provider signs its callbacks with (a merchant key, in real life).
const PROVIDER_SECRET = 'provider-DEVELOPMENT-ONLY-merchant-key';
const TOKEN_TTL_S = 3600;
const IMPORT_TASKS = 10_000;

const { values: opt } = parseArgs({
  options: {
    listen: { type: 'string', default: process.env.APP_LISTEN || '127.0.0.1:3000' },
    ws: { type: 'string', default: process.env.WSGATE_WS_URL || 'ws://127.0.0.1:8080/ws' },
    api: { type: 'string', default: process.env.WSGATE_API_URL || 'http://127.0.0.1:8082' },
    'jwt-secret': { type: 'string', default: process.env.WSGATE_JWT_SECRET || DEV_JWT_SECRET },
    'api-key': { type: 'string', default: process.env.WSGATE_API_KEY || '' },
  },
});
const [host, port] = splitHostPort(opt.listen);
const SELF = `http://${opt.listen}`;
const API = opt.api.replace(/\/+$/, '');

const orders = new Map(); // id -> {id, amount, status: 'waiting' | 'paid', notified, paid_at}
const imports = new Map(); // id -> {id, total, done, state, started, elapsed_ms, error}

// ---- JWTs for the pages (HS256, as docs/authentication.md describes) ----

function jwtFor(sub) {
  const now = Math.floor(Date.now() / 1000);
  const part = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub, iat: now, exp: now + TOKEN_TTL_S })}`;
  return `${unsigned}.${createHmac('sha256', opt['jwt-secret']).update(unsigned).digest('base64url')}`;
}

// ---- the one call to the gateway ----

/**
 * Sends `message` (an object, as JSON text) to every connection of `user` through the gateway's
 * HTTP API. With `key`, a retry of the same push is carried out once (Idempotency-Key).
 * Retries for 10 s while the gateway answers 503 (its cluster client is still connecting);
 * fails with a message that says what to check when the gateway cannot be reached.
 */
async function push(user, message, key) {
  const headers = { 'content-type': 'application/json' };
  if (opt['api-key']) headers.authorization = `Bearer ${opt['api-key']}`;
  if (key) headers['idempotency-key'] = key;
  const body = JSON.stringify({ user_ids: [user], text: JSON.stringify(message) });
  const until = Date.now() + 10_000;
  for (let delay = 50; ; delay = Math.min(delay * 2, 1000)) {
    let res;
    try {
      res = await fetch(`${API}/api/v1/users/send`, { method: 'POST', headers, body });
    } catch (err) {
      throw new Error(
        `cannot reach the wsgate HTTP API at ${API} (${why(err)}): ` +
          `is the gateway running (cargo run --release -p wsgate -- --config examples/payment-progress/wsgate.toml), and is --api its api_addr?`,
      );
    }
    const text = await res.text();
    if (res.ok) return JSON.parse(text);
    if (res.status !== 503 || Date.now() > until) {
      throw new Error(`the wsgate HTTP API answered ${res.status} to users/send: ${text}`);
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

function why(err) {
  const cause = err.cause?.errors?.[0] || err.cause;
  return cause?.code || cause?.message || err.message;
}

// ---- orders and the payment callback ----

function newOrder() {
  const id = randomBytes(6).toString('hex');
  const order = { id, amount: (1 + Math.floor(Math.random() * 9900)) / 100, status: 'waiting', notified: false, paid_at: null };
  orders.set(id, order);
  return order;
}

function orderView(order) {
  return {
    id: order.id,
    amount: order.amount,
    status: order.status,
    paid_at: order.paid_at,
    token: jwtFor(`order-${order.id}`),
    ws: opt.ws,
    pay_url: `${SELF}/provider/pay?order=${order.id}`,
  };
}

function sign(raw) {
  return `sha256=${createHmac('sha256', PROVIDER_SECRET).update(raw).digest('hex')}`;
}

function signatureOk(raw, header) {
  const want = Buffer.from(sign(raw));
  const got = Buffer.from(String(header || ''));
  return got.length === want.length && timingSafeEqual(got, want);
}

/** The provider's callback: verified, idempotent, then one push to the order's page. */
async function paymentCallback(raw, signature) {
  const callbackAt = Date.now();
  if (!signatureOk(raw, signature)) return [401, { error: 'bad signature' }];
  const { order_id: id, amount, txn } = JSON.parse(raw);
  const order = orders.get(id);
  if (!order) return [404, { error: `no order ${id}` }];
  if (amount !== order.amount) return [400, { error: `amount ${amount} is not the order's ${order.amount}` }];
  if (order.notified) return [200, { ok: true, duplicate: true }]; // a repeated callback: already told
  order.status = 'paid';
  order.paid_at ??= callbackAt;
  // Not marked as told until the gateway took it: a failed push answers 502, the provider calls
  // again, and the retry pushes again (the idempotency key keeps it to one message).
  await push(`order-${id}`, { type: 'paid', order: id, amount, txn, callback_at: callbackAt }, `order-${id}-paid`);
  order.notified = true;
  console.log(`order ${id} paid (${txn}); pushed to order-${id} in ${Date.now() - callbackAt} ms`);
  return [200, { ok: true }];
}

/** The simulated provider: the customer paid on their phone; call the merchant's callback. */
async function providerPays(id) {
  const order = orders.get(id);
  if (!order) return [404, { error: `no order ${id}` }];
  const raw = JSON.stringify({ order_id: id, amount: order.amount, txn: `txn-${randomBytes(4).toString('hex')}` });
  const res = await fetch(`${SELF}/api/payments/callback`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-provider-signature': sign(raw) },
    body: raw,
  });
  return [res.ok ? 200 : 502, { callback_status: res.status, callback: await res.json() }];
}

// ---- imports: 10,000 tasks, each one's progress pushed ----

function newImport() {
  const id = randomBytes(6).toString('hex');
  const job = { id, total: IMPORT_TASKS, done: 0, state: 'running', started: Date.now(), elapsed_ms: null, error: null };
  imports.set(id, job);
  runImport(job).catch((err) => {
    job.state = 'failed';
    job.error = err.message;
    console.error(`import ${id} failed at ${job.done}/${job.total}: ${err.message}`);
  });
  return job;
}

async function runImport(job) {
  for (let n = 1; n <= job.total; n++) {
    importOneRow(job.id, n);
    await push(`import-${job.id}`, { done: n, total: job.total });
    job.done = n;
  }
  job.state = 'done';
  job.elapsed_ms = Date.now() - job.started;
  const rate = Math.round((job.total * 1000) / job.elapsed_ms);
  console.log(`import ${job.id}: ${job.total} tasks in ${(job.elapsed_ms / 1000).toFixed(1)} s (${rate} progress pushes/s)`);
}

/** One task: stands in for parsing and storing one row. */
function importOneRow(job, n) {
  createHmac('sha256', job).update(String(n)).digest();
}

function importView(job) {
  const { started, ...view } = job;
  return { ...view, token: jwtFor(`import-${job.id}`), ws: opt.ws };
}

// ---- the provider's page ----

function providerPage(order) {
  return `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<link rel="icon" href="data:,"><title>PayDemo</title><style>body{font:16px system-ui,sans-serif;margin:32px;max-width:360px}button{font-size:18px;padding:10px 24px}</style></head>
<body><h1>PayDemo</h1><p>Simulated payment provider. Pay <b>${order.amount.toFixed(2)} EUR</b> for order <code>${order.id}</code>?</p>
<button id="pay">Pay</button> <p id="result"></p>
<script>
document.getElementById('pay').onclick = async () => {
  const res = await fetch('/provider/pay?order=${order.id}', { method: 'POST' });
  document.getElementById('result').textContent = res.ok ? 'Paid. You can close this page.' : 'Failed: ' + await res.text();
};
</script></body></html>`;
}

// ---- HTTP ----

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css' };

async function serveFile(res, root, rel) {
  const path = normalize(join(root, rel));
  if (!path.startsWith(root + sep)) return send(res, 404, 'not found');
  try {
    const body = await readFile(path);
    res.writeHead(200, { 'content-type': TYPES[extname(path)] || 'application/octet-stream', 'cache-control': 'no-store' });
    res.end(body);
  } catch {
    send(res, 404, 'not found');
  }
}

function send(res, status, body) {
  const json = typeof body !== 'string';
  res.writeHead(status, { 'content-type': json ? 'application/json' : 'text/plain; charset=utf-8' });
  res.end(json ? JSON.stringify(body) : body);
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

async function route(req, res) {
  const url = new URL(req.url, SELF);
  const path = url.pathname;
  const post = req.method === 'POST';
  let m;
  if (post && path === '/api/orders') return send(res, 200, orderView(newOrder()));
  if (!post && (m = /^\/api\/orders\/([0-9a-f]+)$/.exec(path))) {
    const order = orders.get(m[1]);
    return order ? send(res, 200, orderView(order)) : send(res, 404, { error: `no order ${m[1]}` });
  }
  if (post && path === '/api/payments/callback') {
    return send(res, ...(await paymentCallback(await readBody(req), req.headers['x-provider-signature'])));
  }
  if (post && path === '/api/imports') return send(res, 200, importView(newImport()));
  if (!post && (m = /^\/api\/imports\/([0-9a-f]+)$/.exec(path))) {
    const job = imports.get(m[1]);
    return job ? send(res, 200, importView(job)) : send(res, 404, { error: `no import ${m[1]}` });
  }
  if (path === '/provider/pay') {
    const order = orders.get(url.searchParams.get('order'));
    if (!order) return send(res, 404, 'no such order');
    if (post) return send(res, ...(await providerPays(order.id)));
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    return res.end(providerPage(order));
  }
  if (req.method !== 'GET') return send(res, 405, 'method not allowed');
  if (path.startsWith('/wsgate/')) return serveFile(res, CLIENT_SRC, path.slice('/wsgate/'.length));
  return serveFile(res, PUBLIC, path === '/' ? 'index.html' : path.slice(1));
}

function splitHostPort(addr) {
  const i = addr.lastIndexOf(':');
  if (i < 0) throw new Error(`--listen ${addr}: expected HOST:PORT`);
  return [addr.slice(0, i).replace(/^\[|\]$/g, ''), Number(addr.slice(i + 1))];
}

createServer((req, res) => {
  route(req, res).catch((err) => {
    console.error(`${req.method} ${req.url}: ${err.message}`);
    if (!res.headersSent) send(res, 502, { error: err.message });
  });
})
  .on('error', (err) => {
    console.error(`cannot listen on ${opt.listen}: ${err.message}`);
    process.exit(1);
  })
  .listen(port, host, () => {
    console.log(`payment-progress app on ${SELF}/ (gateway: clients ${opt.ws}, HTTP API ${API})`);
    fetch(`${API}/healthz`).catch((err) =>
      console.error(`warning: the wsgate HTTP API at ${API} does not answer (${why(err)}); start the gateway, or pass --api`),
    );
  });
