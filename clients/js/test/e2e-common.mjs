// Shared by the end-to-end scripts (wx.test.mjs, browser.test.mjs): arguments, JWTs, the
// gateway's HTTP API, waiting, and failing with a clear message and exit code.
//
// Exit codes: 0 passed, 1 a check failed, 2 bad arguments, 3 the whole run timed out.

import { createHmac, randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';

/**
 * Parses `--ws URL --api URL --secret SECRET [--shots DIR] [--api-key KEY]`, and the given
 * flags (arguments without a value, e.g. `--restart`), which become `true`.
 * @param {string} usage the script's usage line, printed on a mistake
 * @param {{flags?: string[]}} [options]
 */
export function parseArgs(usage, { flags = [] } = {}) {
  const args = {};
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m) usageError(usage, `unexpected argument ${JSON.stringify(argv[i])}`);
    const name = m[1].replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (flags.includes(m[1])) {
      if (m[2] !== undefined) usageError(usage, `--${m[1]} takes no value`);
      args[name] = true;
      continue;
    }
    const value = m[2] !== undefined ? m[2] : argv[++i];
    if (value === undefined) usageError(usage, `--${m[1]} needs a value`);
    args[name] = value;
  }
  for (const required of ['ws', 'api', 'secret']) {
    if (!args[required]) usageError(usage, `--${required} is required`);
  }
  if (!/^wss?:\/\//.test(args.ws)) usageError(usage, `--ws must be a ws:// or wss:// URL, got ${args.ws}`);
  args.api = args.api.replace(/\/+$/, '');
  return args;
}

/** Prints `message` and the usage line, and exits with code 2. */
export function usageError(usage, message) {
  console.error(`${message}\nusage: ${usage}`);
  process.exit(2);
}

/** Exits with code 3 if the run is not over after `ms`. */
export function deadline(ms, what) {
  setTimeout(() => {
    console.error(`FAILED - ${what} did not finish within ${ms / 1000} s (see the steps above for the last one that passed)`);
    process.exit(3);
  }, ms).unref();
}

/** A user id unique to this run: `<prefix>-<random hex>`. */
export function uniqueUser(prefix) {
  return `${prefix}-${randomBytes(5).toString('hex')}`;
}

/** An HS256 JWT for `sub`, valid for 10 minutes (the gateway's --jwt-secret is `secret`). */
export function makeJwt(secret, sub) {
  const now = Math.floor(Date.now() / 1000);
  const part = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
  const unsigned = `${part({ alg: 'HS256', typ: 'JWT' })}.${part({ sub, iat: now, exp: now + 600 })}`;
  const signature = createHmac('sha256', secret).update(unsigned).digest('base64url');
  return `${unsigned}.${signature}`;
}

/** The gateway's HTTP API. */
export class Api {
  constructor(base, apiKey) {
    this.base = base;
    this.apiKey = apiKey;
  }

  async post(path, body) {
    const headers = { 'content-type': 'application/json' };
    if (this.apiKey) headers.authorization = `Bearer ${this.apiKey}`;
    let res;
    try {
      res = await fetch(this.base + path, { method: 'POST', headers, body: JSON.stringify(body) });
    } catch (err) {
      throw new Error(`POST ${this.base}${path} failed: ${err.cause ? err.cause.message : err.message} (is --api the gateway's HTTP API address?)`);
    }
    const text = await res.text();
    if (res.status !== 200) {
      throw new Error(`POST ${path} ${JSON.stringify(body)} answered ${res.status}: ${text}`);
    }
    return text ? JSON.parse(text) : {};
  }

  /** SendToUsers with a text payload. */
  sendToUser(userId, text) {
    return this.post('/api/v1/users/send', { user_ids: [userId], text });
  }

  /** Closes every connection of the user from the gateway's side. */
  forceOffline(userId, code = 4000, reason = 'test cut') {
    return this.post('/api/v1/force-offline', { user_ids: [userId], code, reason });
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Reads lines from a stream (the harness's messages on stdin) as they come, so none is lost
 * between two waits.
 * @param {NodeJS.ReadableStream} input
 */
export function lineReader(input) {
  const lines = [];
  let ended = false;
  let wake = null;
  const rl = createInterface({ input, crlfDelay: Infinity });
  rl.on('line', (line) => {
    lines.push(line);
    if (wake) wake();
  });
  rl.on('close', () => {
    ended = true;
    if (wake) wake();
  });
  return {
    /** Resolves when a line equal to `text` (spaces trimmed) arrives; fails after `ms`, or at the end of input. */
    async waitForLine(text, ms) {
      const until = Date.now() + ms;
      for (;;) {
        while (lines.length > 0) {
          const line = lines.shift().trim();
          if (line === text) return;
          if (line) console.error(`(ignoring ${JSON.stringify(line)} on stdin: waiting for ${text})`);
        }
        if (ended) throw new Error(`stdin was closed before a ${text} line came (the harness must keep stdin open and write "${text}\\n")`);
        const left = until - Date.now();
        if (left <= 0) throw new Error(`no ${text} line on stdin within ${ms / 1000} s`);
        await new Promise((resolve) => {
          const timer = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = null;
      }
    },
    close() {
      rl.close();
    },
  };
}

/** Writes to stdout and resolves once the text is handed to the OS (a pipe may buffer otherwise). */
export function writeStdout(text) {
  return new Promise((resolve, reject) => process.stdout.write(text, (err) => (err ? reject(err) : resolve())));
}

/** Polls `fn` until it returns a truthy value; fails naming `what` after `ms`. */
export async function waitFor(what, fn, ms = 10000, every = 10) {
  const until = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(every);
  }
}

/** Runs one named step, printing `ok - step` or turning its error into one that names it. */
export async function step(what, fn) {
  const started = Date.now();
  try {
    const result = await fn();
    console.log(`ok - ${what} (${Date.now() - started} ms)`);
    return result;
  } catch (err) {
    err.message = `${what}: ${err.message}`;
    throw err;
  }
}

/** Fails unless `got` is exactly "1".."n" in order, saying what is missing, repeated or misplaced. */
export function checkExactlyOnceInOrder(got, n) {
  const want = Array.from({ length: n }, (_, i) => String(i + 1));
  if (got.length === n && got.every((v, i) => v === want[i])) return;
  const counts = new Map();
  for (const v of got) counts.set(v, (counts.get(v) || 0) + 1);
  const missing = want.filter((v) => !counts.has(v));
  const repeated = [...counts].filter(([, c]) => c > 1).map(([v, c]) => `${v}×${c}`);
  const firstOff = got.findIndex((v, i) => v !== want[i]);
  throw new Error(
    `expected "1".."${n}" once each in order; got ${got.length} messages` +
      (missing.length ? `; missing ${summarize(missing)}` : '') +
      (repeated.length ? `; repeated ${summarize(repeated)}` : '') +
      (firstOff >= 0 ? `; first difference at index ${firstOff}: ${JSON.stringify(got.slice(firstOff, firstOff + 5))}` : ''),
  );
}

function summarize(list) {
  return list.length > 20 ? `${list.slice(0, 20).join(', ')} … (${list.length} in all)` : list.join(', ');
}

/** Where the connection cuts go in a run of `n` messages: evenly spaced, `k` of them. */
export function cutPoints(n, k) {
  return Array.from({ length: k }, (_, i) => Math.round(((i + 1) * n) / (k + 1)));
}
