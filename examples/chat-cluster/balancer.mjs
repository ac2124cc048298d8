// The chat-cluster example's own load balancer: serves the chat page and passes each WebSocket
// upgrade on /ws to the next gateway in turn (round robin), trying the others when one does not
// answer. It is what nginx does in front of a wsgate cluster (nginx.conf here is the same setup);
// no stickiness is needed, since any gateway can take any client.
//
//   node examples/chat-cluster/balancer.mjs [--listen 127.0.0.1:8000] \
//        [--gateways 127.0.0.1:8080,127.0.0.1:8090]
//
// Node's standard library only.

import { createServer } from 'node:http';
import { connect } from 'node:net';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const usage = 'node balancer.mjs [--listen HOST:PORT] [--gateways HOST:PORT,HOST:PORT,...]';
const options = { listen: '127.0.0.1:8000', gateways: '127.0.0.1:8080,127.0.0.1:8090' };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const key = argv[i].replace(/^--/, '');
  if (!(key in options) || argv[i + 1] === undefined) {
    console.error(`unexpected argument ${argv[i]}\nusage: ${usage}`);
    process.exit(2);
  }
  options[key] = argv[i + 1];
}

/** `host:port` → {host, port}, or exits saying what is wrong. */
function address(text, what) {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(text.trim());
  if (!m || Number(m[2]) > 65535) {
    console.error(`${what} ${JSON.stringify(text)} is not HOST:PORT\nusage: ${usage}`);
    process.exit(2);
  }
  return { host: m[1], port: Number(m[2]) };
}

const listen = address(options.listen, '--listen');
const gateways = options.gateways.split(',').map((g) => address(g, '--gateways'));
const page = fileURLToPath(new URL('./public/index.html', import.meta.url));
let next = 0;

/**
 * Opens a TCP connection to a gateway, starting with the next in turn and trying each once;
 * resolves with the socket and the gateway, or null when none answered.
 */
function dialNextGateway() {
  const first = next;
  next = (next + 1) % gateways.length;
  return new Promise((resolve) => {
    const attempt = (tried) => {
      if (tried === gateways.length) return resolve(null);
      const gateway = gateways[(first + tried) % gateways.length];
      const socket = connect(gateway);
      socket.setNoDelay(true);
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        resolve({ socket, gateway });
      });
      socket.once('error', (err) => {
        console.error(`gateway ${gateway.host}:${gateway.port} did not answer (${err.code || err.message}); trying the next`);
        attempt(tried + 1);
      });
    };
    attempt(0);
  });
}

const server = createServer(async (req, res) => {
  if (req.method === 'GET' && (req.url === '/' || req.url.startsWith('/?'))) {
    try {
      const html = await readFile(page);
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(html);
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`cannot read the page ${page}: ${err.message}\n`);
    }
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found: the chat page is at / and the WebSocket at /ws\n');
});

server.on('upgrade', async (req, client, head) => {
  client.on('error', () => {});
  if (!req.url.startsWith('/ws')) {
    client.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  const dialed = await dialNextGateway();
  if (!dialed) {
    console.error('no gateway answered: is one running? (see README.md, "Run it")');
    client.end('HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  const { socket, gateway } = dialed;
  // The client's request as it came, plus who the client is, as nginx's proxy_set_header does.
  let request = `${req.method} ${req.url} HTTP/1.1\r\n`;
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    request += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
  }
  request += `X-Forwarded-For: ${req.socket.remoteAddress}\r\n\r\n`;
  socket.write(request);
  if (head.length) socket.write(head);
  socket.pipe(client).pipe(socket);
  const close = () => {
    socket.destroy();
    client.destroy();
  };
  socket.on('error', close);
  client.on('error', close);
  socket.on('close', close);
  client.on('close', close);
  console.log(`client ${req.socket.remoteAddress}:${req.socket.remotePort} -> gateway ${gateway.host}:${gateway.port}`);
});

server.on('error', (err) => {
  console.error(`cannot listen on ${options.listen}: ${err.message}`);
  process.exit(1);
});
server.listen(listen.port, listen.host, () => {
  const at = server.address();
  console.log(`balancer listening on http://${at.address}:${at.port}/ (gateways ${options.gateways})`);
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
