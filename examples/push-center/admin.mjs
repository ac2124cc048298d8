// The push center's web app: the admin form and the client page. Node's standard library only.
//
//   node admin.mjs [--listen 127.0.0.1:3001] [--api http://127.0.0.1:8082] [--api-key KEY]
//                  [--ws ws://127.0.0.1:8080/ws]
//
//   GET  /            the client page (public/index.html): connects to the gateway, lists messages
//   GET  /admin       the admin form (public/admin.html)
//   POST /admin       title=...&text=...&id=... (a plain form post): broadcast through the
//                     gateway's HTTP API, answered with the form and the gateway's result
//   GET  /config.json {"ws": the gateway's client URL} for the client page
//   GET  /wsgate/...  the JavaScript client (clients/js/src), as ES modules, no build step
//
// The API key (--api-key or WSGATE_API_KEY) stays here, on the server: the browser never holds
// it. The message every client gets is the JSON {"id","title","text","from":"admin"}; the
// form carries a fresh id, sent as the API's Idempotency-Key, so a form submitted twice (a
// reload, a double click) reaches each client once.

import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const PUBLIC = join(HERE, 'public');
const CLIENT_SRC = join(HERE, '..', '..', 'clients', 'js', 'src');
const USAGE =
  'usage: node admin.mjs [--listen 127.0.0.1:3001] [--api http://127.0.0.1:8082] [--api-key KEY] [--ws ws://127.0.0.1:8080/ws]';

function parseArgs(argv) {
  const args = {
    listen: '127.0.0.1:3001',
    api: 'http://127.0.0.1:8082',
    apiKey: process.env.WSGATE_API_KEY || '',
    ws: 'ws://127.0.0.1:8080/ws',
  };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--(listen|api|api-key|ws)(?:=(.*))?$/.exec(argv[i]);
    if (!m) usage(`unexpected argument ${JSON.stringify(argv[i])}`);
    const value = m[2] !== undefined ? m[2] : argv[++i];
    if (value === undefined) usage(`--${m[1]} needs a value`);
    args[m[1] === 'api-key' ? 'apiKey' : m[1]] = value;
  }
  args.api = args.api.replace(/\/+$/, '');
  if (!/^https?:\/\//.test(args.api)) usage(`--api must be an http:// URL, got ${args.api}`);
  if (!/^wss?:\/\//.test(args.ws)) usage(`--ws must be a ws:// or wss:// URL, got ${args.ws}`);
  const at = args.listen.lastIndexOf(':');
  args.host = args.listen.slice(0, at).replace(/^\[|\]$/g, '') || '127.0.0.1';
  args.port = Number(args.listen.slice(at + 1));
  if (at < 0 || !Number.isInteger(args.port)) usage(`--listen must be HOST:PORT, got ${args.listen}`);
  return args;
}

function usage(message) {
  console.error(`${message}\n${USAGE}`);
  process.exit(2);
}

const args = parseArgs(process.argv.slice(2));

const escape = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
const newId = () => `admin-${randomBytes(8).toString('hex')}`;

/** Broadcasts one message through the gateway's HTTP API; returns {status, body}. */
async function broadcast(message) {
  const headers = { 'content-type': 'application/json', 'idempotency-key': message.id };
  if (args.apiKey) headers.authorization = `Bearer ${args.apiKey}`;
  try {
    const res = await fetch(`${args.api}/api/v1/broadcast`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ text: JSON.stringify(message) }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = { error: 'not_json', message: text };
    }
    return { status: res.status, body };
  } catch (err) {
    const why = err.cause ? err.cause.message : err.message;
    return { status: 502, body: { error: 'unreachable', message: `the gateway's HTTP API at ${args.api} cannot be reached: ${why}` } };
  }
}

/** The admin page, with a fresh message id in the form and the outcome of the last post. */
async function adminPage({ result = '', title = '', text = '' } = {}) {
  const html = await readFile(join(PUBLIC, 'admin.html'), 'utf8');
  return html
    .replace('{{ID}}', escape(newId()))
    .replace('{{TITLE}}', escape(title))
    .replace('{{TEXT}}', escape(text))
    .replace('{{RESULT}}', result);
}

async function readBody(req, limit = 64 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw Object.assign(new Error('the form is too large'), { status: 413 });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function postAdmin(req, res) {
  const form = new URLSearchParams(await readBody(req));
  const title = (form.get('title') || '').trim() || 'Notice';
  const text = (form.get('text') || '').trim();
  const id = (form.get('id') || '').trim() || newId();
  const wantsJson = (req.headers.accept || '').includes('application/json');
  let status;
  let outcome;
  if (!text) {
    status = 400;
    outcome = { error: 'bad_request', message: 'the message text is empty' };
  } else if (!/^[\x21-\x7e]{1,100}$/.test(id)) {
    status = 400;
    outcome = { error: 'bad_request', message: 'the id must be 1-100 printable ASCII characters' };
  } else {
    // No timestamp in it: a resubmitted form must be the very same command for the gateway to
    // answer it from its Idempotency-Key memory (a different body under a used key is a 400).
    const message = { id, title, text, from: 'admin' };
    const answer = await broadcast(message);
    status = answer.status === 200 ? 200 : 502;
    outcome = answer.status === 200 ? { id, ...answer.body } : { id, gateway_status: answer.status, ...answer.body };
  }
  if (wantsJson) {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(outcome));
    return;
  }
  const result =
    status === 200
      ? `<p class="ok" id="result" data-delivered="${escape(outcome.delivered)}" data-id="${escape(id)}">Sent <code>${escape(id)}</code>: ` +
        `delivered to <b>${escape(outcome.delivered)}</b> connection(s)` +
        (outcome.failed && outcome.failed.length ? `; gateways that did not answer: ${escape(outcome.failed.join(', '))}` : '') +
        '.</p>'
      : `<p class="error" id="result" data-error="${escape(outcome.error)}">Not sent: ${escape(outcome.message || outcome.error)}` +
        (outcome.gateway_status ? ` (gateway answered ${escape(outcome.gateway_status)})` : '') +
        '</p>';
  // After a failure keep what was typed, so it can be sent again.
  const keep = status === 200 ? {} : { title, text };
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' });
  res.end(await adminPage({ result, ...keep }));
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.json': 'application/json' };

/** A file under `root`, never outside it. */
async function sendFile(res, root, rel) {
  const path = normalize(join(root, rel));
  if (path !== root && !path.startsWith(root + sep)) return notFound(res);
  let data;
  try {
    data = await readFile(path);
  } catch {
    return notFound(res);
  }
  const ext = path.slice(path.lastIndexOf('.'));
  res.writeHead(200, { 'content-type': TYPES[ext] || 'application/octet-stream', 'cache-control': 'no-cache' });
  res.end(data);
}

function notFound(res) {
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found\n');
}

const server = createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://admin.invalid');
    if (req.method === 'GET' && (url.pathname === '/' || url.pathname === '/index.html')) {
      return await sendFile(res, PUBLIC, 'index.html');
    }
    if (req.method === 'GET' && url.pathname === '/admin') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      return res.end(await adminPage());
    }
    if (req.method === 'POST' && url.pathname === '/admin') return await postAdmin(req, res);
    if (req.method === 'GET' && url.pathname === '/config.json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ ws: args.ws }));
    }
    if (req.method === 'GET' && url.pathname.startsWith('/wsgate/')) {
      return await sendFile(res, CLIENT_SRC, decodeURIComponent(url.pathname.slice('/wsgate/'.length)));
    }
    return notFound(res);
  } catch (err) {
    if (!res.headersSent) res.writeHead(err.status || 500, { 'content-type': 'text/plain' });
    res.end(`${err.message}\n`);
  }
});

server.listen(args.port, args.host, () => {
  const { port } = server.address();
  console.log(`push center on http://${args.host}:${port}/ (admin form: /admin); gateway API ${args.api}, clients connect to ${args.ws}`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.close(() => process.exit(0)).closeAllConnections());
