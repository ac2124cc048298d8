// Base64 (RFC 4648 §4 and §5) and UTF-8 in plain JavaScript.
//
// Why not btoa/atob, Buffer or TextEncoder: WeChat mini-programs and some uni-app targets have
// none of them, and btoa only takes Latin-1 strings anyway. These are small, allocation-light
// and exact; the unit tests check them against Node's Buffer.

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const ALPHABET_URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

// char code -> 6-bit value; both alphabets decode ('+' and '-' are 62, '/' and '_' are 63).
const DECODE_TABLE = (() => {
  const table = new Int16Array(128).fill(-1);
  for (let i = 0; i < 64; i++) {
    table[ALPHABET.charCodeAt(i)] = i;
    table[ALPHABET_URL.charCodeAt(i)] = i;
  }
  return table;
})();

/**
 * Turns an ArrayBuffer, a typed array or a DataView into a Uint8Array over the same bytes.
 * @param {ArrayBuffer|ArrayBufferView} data
 * @returns {Uint8Array}
 */
export function toBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  // toString rather than instanceof: an ArrayBuffer from another realm (an iframe, a worker
  // bridge) is not an instance of this realm's ArrayBuffer.
  if (Object.prototype.toString.call(data) === '[object ArrayBuffer]') return new Uint8Array(data);
  throw new TypeError('expected an ArrayBuffer or a typed array, got ' + describeValue(data));
}

/**
 * True for the binary types `toBytes` accepts.
 * @param {unknown} data
 */
export function isBinary(data) {
  return (
    data != null &&
    (ArrayBuffer.isView(data) || Object.prototype.toString.call(data) === '[object ArrayBuffer]')
  );
}

/**
 * Base64-encodes bytes.
 * @param {ArrayBuffer|ArrayBufferView} data
 * @param {boolean} [url=false] true: the URL-safe alphabet (RFC 4648 §5) without padding
 * @returns {string}
 */
export function encodeBase64(data, url = false) {
  const bytes = toBytes(data);
  const abc = url ? ALPHABET_URL : ALPHABET;
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += abc[n >> 18] + abc[(n >> 12) & 63] + abc[(n >> 6) & 63] + abc[n & 63];
  }
  const rest = bytes.length - i;
  if (rest === 1) {
    const n = bytes[i] << 16;
    out += abc[n >> 18] + abc[(n >> 12) & 63] + (url ? '' : '==');
  } else if (rest === 2) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8);
    out += abc[n >> 18] + abc[(n >> 12) & 63] + abc[(n >> 6) & 63] + (url ? '' : '=');
  }
  return out;
}

/**
 * Decodes base64 in either alphabet, padding optional.
 * @param {string} text
 * @returns {Uint8Array}
 * @throws {Error} on a character outside the alphabets or an impossible length
 */
export function decodeBase64(text) {
  if (typeof text !== 'string') throw new TypeError('base64 text must be a string, got ' + describeValue(text));
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 61 /* = */) end--;
  if (text.length - end > 2) throw new Error('invalid base64: too much padding');
  if (end % 4 === 1) throw new Error('invalid base64: length ' + end + ' cannot encode whole bytes');
  const out = new Uint8Array(Math.floor((end * 3) / 4));
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < end; i++) {
    const c = text.charCodeAt(i);
    const v = c < 128 ? DECODE_TABLE[c] : -1;
    if (v < 0) throw new Error('invalid base64 character ' + JSON.stringify(text[i]) + ' at ' + i);
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (acc >> bits) & 0xff;
    }
  }
  return out;
}

/**
 * Encodes a string as UTF-8 (lone surrogates become U+FFFD, as TextEncoder does).
 * @param {string} text
 * @returns {Uint8Array}
 */
export function utf8Encode(text) {
  const out = [];
  for (let i = 0; i < text.length; i++) {
    let c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < text.length ? text.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00);
        i++;
      } else {
        c = 0xfffd;
      }
    }
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return new Uint8Array(out);
}

/**
 * Decodes UTF-8 bytes to a string (an invalid sequence becomes U+FFFD).
 * @param {ArrayBuffer|ArrayBufferView} data
 * @returns {string}
 */
export function utf8Decode(data) {
  const bytes = toBytes(data);
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    let need = 0;
    let c = 0;
    let min = 0;
    if (b < 0x80) {
      out += String.fromCharCode(b);
      i++;
      continue;
    } else if (b >= 0xc2 && b <= 0xdf) {
      need = 1; c = b & 0x1f; min = 0x80;
    } else if (b >= 0xe0 && b <= 0xef) {
      need = 2; c = b & 0x0f; min = 0x800;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3; c = b & 0x07; min = 0x10000;
    } else {
      out += '\ufffd';
      i++;
      continue;
    }
    let j = 1;
    for (; j <= need && i + j < bytes.length; j++) {
      const cont = bytes[i + j];
      if ((cont & 0xc0) !== 0x80) break;
      c = (c << 6) | (cont & 63);
    }
    if (j <= need || c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
      // Ill-formed: one U+FFFD for the lead byte and the continuation bytes read with it.
      out += '\ufffd';
      i += j;
      continue;
    }
    out += c < 0x10000 ? String.fromCharCode(c) : String.fromCharCode(0xd800 + ((c - 0x10000) >> 10), 0xdc00 + ((c - 0x10000) & 0x3ff));
    i += need + 1;
  }
  return out;
}

function describeValue(value) {
  if (value === null) return 'null';
  if (typeof value !== 'object') return typeof value;
  return Object.prototype.toString.call(value).slice(8, -1);
}
