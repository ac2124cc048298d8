// What both scripts of this test need: arguments, steps, waiting, the gateway's `online` query
// and `php publish.php`.

import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const EXAMPLE = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Parses `--name value` pairs; `required` must be there. Exits 2 on a mistake. */
export function parseArgs(usage, required, defaults = {}) {
  const args = { ...defaults };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)$/.exec(argv[i]);
    if (!m || argv[i + 1] === undefined) {
      console.error(`bad argument ${JSON.stringify(argv[i])}\nusage: ${usage}`);
      process.exit(2);
    }
    args[m[1]] = argv[++i];
  }
  for (const name of required) {
    if (!args[name]) {
      console.error(`--${name} is required\nusage: ${usage}`);
      process.exit(2);
    }
  }
  return args;
}

/** Exits with code 3 if the run is not over after `ms`. */
export function deadline(ms, what) {
  setTimeout(() => {
    console.error(`FAILED - ${what} did not finish within ${ms / 1000} s (the last step that passed is above)`);
    process.exit(3);
  }, ms).unref();
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `fn` until it returns a truthy value; fails naming `what` after `ms`. */
export async function waitFor(what, fn, ms = 10_000) {
  const until = Date.now() + ms;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Runs one named step, printing `ok - step` or failing with its name. */
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

/** Waits until the gateway (its HTTP API at `api`) has a connection of `user`. */
export function online(api, user) {
  return waitFor(`${user} online at the gateway`, async () => {
    const res = await fetch(`${api}/api/v1/online?user_ids=${encodeURIComponent(user)}`);
    const body = await res.json();
    return res.status === 200 && body.user_ids.includes(user);
  });
}

/** `php publish.php USER TEXT`; resolves the message id it printed. */
export function publish(user, text, redis = '127.0.0.1:6379') {
  return new Promise((resolve, reject) => {
    execFile('php', [join(EXAMPLE, 'publish.php'), user, text, '--redis', redis], (err, stdout, stderr) => {
      if (err) return reject(new Error(`php publish.php ${user} failed (${err.code}): ${stderr || err.message}`));
      const m = /^published (\S+) to /.exec(stdout);
      if (!m) return reject(new Error(`publish.php did not say what it published: ${stdout}`));
      resolve(m[1]);
    });
  });
}

/** A user id of this run. */
export function userId(prefix, name) {
  return `${prefix}-${name}`;
}
