// The mini-program's login backend, and the web page. Node's standard library only.
//
//   node login.mjs [--listen 127.0.0.1:3002] [--ws ws://127.0.0.1:8080/ws] [--ttl 3600]
//                  [--secret S | WSGATE_JWT_SECRET=S | --config wsgate.toml]
//
//   POST /login      {"code": "<what wx.login gave>"} → {"user", "token", "ws", "expires_at"}
//   GET  /           the web page (web/index.html): log in as a user, receive that user's messages
//   GET  /wsgate/... the JavaScript client (clients/js/src) as ES modules, for the web page
//
// The token is an HS256 JWT, `sub` = the user id, `exp` = now + --ttl: the gateway checks it at
// the WebSocket handshake (docs/authentication.md). This process is the only one that signs
// tokens, and the secret never leaves the servers. By default it is read from the `jwt_secret`
// line of the gateway's config (wsgate.toml next to this file), so the two always agree in
// development; in production give both WSGATE_JWT_SECRET.
//
// A real login backend exchanges the code for the user's openid at WeChat
// (`https://api.weixin.qq.com/sns/jscode2session?appid=...&secret=...&js_code=CODE`) and maps
// that to your user id. Here THE CODE IS TAKEN AS THE USER ID (letters, digits, '.', '_', '-'),
// so a page or a test can log in as whoever it names. Replace `userForCode` for real use.

import { createServer } from 'node:http';
import { createHmac } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { dirname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const WEB = join(HERE, 'web');
const CLIENT_SRC = join(HERE, '..', '..', 'clients', 'js', 'src');
const USAGE =
  'usage: node login.mjs [--listen 127.0.0.1:3002] [--ws ws://127.0.0.1:8080/ws] [--ttl 3600] [--secret S | --config wsgate.toml]';

function usage(message) {
  console.error(`${message}\n${USAGE}`);
  process.exit(2);
}

function parseArgs(argv) {
  const args = { listen: '127.0.0.1:3002', ws: 'ws://127.0.0.1:8080/ws', ttl: '3600', secret: process.env.WSGATE_JWT_SECRET || '', config: join(HERE, 'wsgate.toml') };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--(listen|ws|ttl|secret|config)(?:=(.*))?$/.exec(argv[i]);
    if (!m) usage(`unexpected argument ${JSON.stringify(argv[i])}`);
    const value = m[2] !== undefined ? m[2] : argv[++i];
    if (value === undefined) usage(`--${m[1]} needs a value`);
    args[m[1]] = value;
  }
  if (!/^wss?:\/\//.test(args.ws)) usage(`--ws must be a ws:// or wss:// URL, got ${args.ws}`);
  args.ttl = Number(args.ttl);
  if (!Number.isInteger(args.ttl) || args.ttl < 60) usage('--ttl must be a number of seconds, at least 60');
  if (!args.secret) {
    let toml;
    try {
      toml = readFileSync(args.config, 'utf8');
    } catch (err) {
      usage(`no secret: give --secret or WSGATE_JWT_SECRET, or a --config with jwt_secret (${err.message})`);
    }
    const m = /^\s*jwt_secret\s*=\s*"([^"]+)"/m.exec(toml);
    if (!m) usage(`no secret: ${args.config} has no jwt_secret line; give --secret or WSGATE_JWT_SECRET`);
    args.secret = m[1];
  }
  if (Buffer.byteLength(args.secret) < 32) usage('the secret must be at least 32 bytes, as the gateway requires');
  const at = args.listen.lastIndexOf(':');
  args.host = args.listen.slice(0, at).replace(/^\[|\]$/g, '') || '127.0.0.1';
  args.port = Number(args.listen.slice(at + 1));
  if (at < 0 || !Number.isInteger(args.port)) usage(`--listen must be HOST:PORT, got ${args.listen}`);
  return args;
}

const args = parseArgs(process.argv.slice(2));

/** The development stand-in for jscode2session: the code is the user id. */
function userForCode(code) {
  return typeof code === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(code) ? code : null;
}

/** An HS256 JWT for `sub`, valid for --ttl seconds. */
function sign(sub) {
  const now = Math.floor(Date.now() / 1000);
  const part = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub, iat: now, exp: now + args.ttl })}`;
  const signature = createHmac('sha256', args.secret).update(unsigned).digest('base64url');
  return { token: `${unsigned}.${signature}`, expiresAt: now + args.ttl };
}

async function readBody(req, limit = 16 * 1024) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > limit) throw Object.assign(new Error('the body is too large'), { status: 413 });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

async function login(req, res) {
  const raw = await readBody(req);
  let code;
  if ((req.headers['content-type'] || '').includes('application/x-www-form-urlencoded')) {
    code = new URLSearchParams(raw).get('code');
  } else {
    try {
      code = JSON.parse(raw || '{}').code;
    } catch {
      return json(res, 400, { error: 'bad_request', message: 'the body is not JSON: send {"code": "..."}' });
    }
  }
  const user = userForCode(code);
  if (!user) return json(res, 400, { error: 'bad_code', message: 'code must be 1-64 letters, digits, ".", "_" or "-" (here the code is the user id)' });
  const { token, expiresAt } = sign(user);
  json(res, 200, { user, token, ws: args.ws, expires_at: expiresAt });
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8' };

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
    const url = new URL(req.url, 'http://login.invalid');
    if (req.method === 'POST' && url.pathname === '/login') return await login(req, res);
    if (req.method === 'GET' && (url.pathname === '/' || url.pathname === '/index.html')) return await sendFile(res, WEB, 'index.html');
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
  console.log(`login backend on http://${args.host}:${port}/ (POST /login, web page at /); clients connect to ${args.ws}`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.close(() => process.exit(0)).closeAllConnections());
