// What both scripts of this test need: arguments, the gateway's `online` query and
// `php publish.php`; with the examples' shared steps and waiting (../../test-support.mjs).

import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { waitFor } from '../../test-support.mjs';

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

export { deadline, step, waitFor } from '../../test-support.mjs';

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
