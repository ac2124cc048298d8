// Positions: per stream, the epoch and offset of the last publication received (docs/streams.md,
// "Offsets and epochs"), and how they travel in the `wsgate_recover` query parameter.

import { encodeBase64, utf8Encode } from './base64.js';

/** The query parameter that carries positions to the gateway. */
export const RECOVER_PARAM = 'wsgate_recover';

/** The gateway reads at most this many streams from `wsgate_recover`. */
export const MAX_RECOVER_STREAMS = 1024;

/**
 * A valid position, or null: an epoch string and a non-negative integer offset.
 * @param {unknown} value
 * @returns {{epoch: string, offset: number} | null}
 */
export function normalizePosition(value) {
  if (value == null || typeof value !== 'object') return null;
  const { epoch, offset } = /** @type {any} */ (value);
  if (typeof epoch !== 'string' || !Number.isSafeInteger(offset) || offset < 0) return null;
  return { epoch, offset };
}

/**
 * Whether a publication is one the client already has: the same epoch and an offset not above
 * the stored position's. A different epoch is a new run of offsets, so it is always new.
 * @param {{epoch: string, offset: number} | undefined} position
 * @param {string} epoch
 * @param {number} offset
 */
export function isDuplicate(position, epoch, offset) {
  return position !== undefined && position.epoch === epoch && offset <= position.offset;
}

/**
 * The `wsgate_recover` value for some positions: base64url (no padding) of the JSON object
 * from stream name to `{epoch, offset}`.
 * @param {Iterable<[string, {epoch: string, offset: number}]>} entries
 * @returns {string}
 */
export function encodeRecover(entries) {
  const object = {};
  for (const [stream, { epoch, offset }] of entries) object[stream] = { epoch, offset };
  return encodeBase64(utf8Encode(JSON.stringify(object)), true);
}

/**
 * Chooses the positions to send and encodes them. Takes the most recently updated ones first
 * (the map's insertion order is kept oldest to newest), at most MAX_RECOVER_STREAMS and at most
 * `maxLength` characters of encoded value, so a page in very many streams never builds a
 * handshake the gateway refuses as too large (HTTP 431) and reconnects forever.
 *
 * @param {Map<string, {epoch: string, offset: number}>} positions
 * @param {number} maxLength
 * @returns {{value: string, sent: Set<string>, unsent: Set<string>}} value is '' when nothing is sent
 */
export function chooseRecover(positions, maxLength) {
  const newestFirst = [...positions.entries()].reverse();
  let chosen = newestFirst.slice(0, MAX_RECOVER_STREAMS);
  let value = chosen.length ? encodeRecover(chosen) : '';
  // Each entry costs about the same; shrink proportionally, then one by one.
  while (value.length > maxLength && chosen.length > 0) {
    const keep = Math.min(chosen.length - 1, Math.floor((chosen.length * maxLength) / value.length));
    chosen = chosen.slice(0, keep);
    value = chosen.length ? encodeRecover(chosen) : '';
  }
  const sent = new Set(chosen.map(([stream]) => stream));
  const unsent = new Set([...positions.keys()].filter((stream) => !sent.has(stream)));
  return { value, sent, unsent };
}

/**
 * The URL with `wsgate_recover` set to `value` (or removed when `value` is ''), keeping every
 * other query parameter and the fragment as they were. Written without `URL`, which
 * mini-programs lack.
 * @param {string} url
 * @param {string} value base64url, so it needs no percent-encoding
 * @returns {string}
 */
export function withRecoverParam(url, value) {
  let hash = '';
  const hashAt = url.indexOf('#');
  if (hashAt >= 0) {
    hash = url.slice(hashAt);
    url = url.slice(0, hashAt);
  }
  let query = '';
  const queryAt = url.indexOf('?');
  if (queryAt >= 0) {
    query = url.slice(queryAt + 1);
    url = url.slice(0, queryAt);
  }
  const params = query
    .split('&')
    .filter((part) => part !== '' && decodeName(part.split('=')[0]) !== RECOVER_PARAM);
  if (value) params.push(RECOVER_PARAM + '=' + value);
  return url + (params.length ? '?' + params.join('&') : '') + hash;
}

function decodeName(name) {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    return name;
  }
}
