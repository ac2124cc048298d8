// WsgateClient: a wsgate connection that survives reconnects without losing or repeating
// stream messages. The protocol is docs/streams.md; this file follows its "A client, step by
// step": keep a position per stream, send them all when connecting, drop what you already
// have, store positions from `publication` and `joined`, tell the application when a stream
// could not be recovered, acknowledge what asks for it, ping, reconnect with backoff.

import { decodeBase64, encodeBase64, isBinary, toBytes } from './base64.js';
import { Backoff } from './backoff.js';
import { Emitter, rethrowLater } from './emitter.js';
import { chooseRecover, isDuplicate, normalizePosition, withRecoverParam } from './positions.js';
import { browserTransport } from './adapters/browser.js';
import { wxTransport } from './adapters/wx.js';
import { uniTransport } from './adapters/uni.js';

/** The subprotocol that switches a connection to stream frames. */
export const STREAM_PROTOCOL = 'wsgate.stream.v1';
/** The subprotocol that carries a JWT as the next list entry (docs/authentication.md). */
export const JWT_PROTOCOL = 'wsgate.jwt';

const EVENTS = ['state', 'publication', 'message', 'joined', 'unrecovered', 'error'];
// Frame types a stream gateway sends today; while it is unknown whether the gateway agreed on
// the subprotocol, only these count as proof that it did.
const KNOWN_TYPES = new Set(['publication', 'joined', 'message', 'pong', 'error']);
// A connection that stayed up this long is healthy: the next reconnect starts from backoff.min.
const STABLE_AFTER_MS = 5000;
// The gateway reads at most this many ids per ack frame.
const MAX_ACK_IDS = 1024;
// Ack ids remembered per connection for manual ack(); the gateway forgets them after
// --client-ack-timeout (10 s) anyway, so this only bounds memory if the application never acks.
const MAX_ACKABLE = 10000;

/**
 * @typedef {object} WsgateClientOptions
 * @property {string | (() => string | null | undefined | Promise<string | null | undefined>)} [token]
 *   a JWT, or a function returning one (called before every connection attempt, so it can
 *   refresh an expired token). Sent as the subprotocols `wsgate.jwt, <token>`.
 * @property {import('./adapters/browser.js').Transport} [transport] how to open sockets; default
 *   the global WebSocket (`WsgateClient.adapters.browser()`)
 * @property {import('./backoff.js').BackoffOptions} [backoff] reconnect delays in ms:
 *   `{min: 500, max: 20000, factor: 2, jitter: 0.5}`
 * @property {number} [pingInterval] ms between `{"type":"ping"}` frames (25000); 0 disables.
 *   When a whole interval passes after a ping with no frame at all, the socket is considered
 *   dead and replaced.
 * @property {boolean} [autoAck] true (default): acknowledge a frame's `ack` id once the
 *   handlers ran without throwing (and the promises they returned resolved). false: call `ack(id)`
 * @property {number} [ackDelay] ms to gather acknowledgements into one frame (10)
 * @property {Record<string, {epoch: string, offset: number}>} [positions] positions to start
 *   from, e.g. saved by an earlier page
 * @property {{get(): any, set(positions: Record<string, {epoch: string, offset: number}>): void}} [storage]
 *   persists positions: `get()` (may return a promise) is read once, `set()` is called after each change
 * @property {number} [maxRecoverLength] at most this many characters of `wsgate_recover` (6000),
 *   so the handshake stays under the gateway's header limit; the least recently updated
 *   positions are left out first, and their streams reported as `unrecovered` (gap `unsent`)
 */

/**
 * A wsgate client speaking `wsgate.stream.v1`.
 *
 * Events (`on(name, fn)`):
 * - `state` `{state, ...details}`: `connecting` `{attempt, url}`; `connected` `{protocol, streams, url}`;
 *   `disconnected` `{code, reason, error, delay, attempt, url}` (a reconnect is scheduled in `delay` ms);
 *   `closed` `{code, reason}` (after `disconnect()`, no reconnect)
 * - `publication` `{stream, epoch, offset, data, ack}`: a stream message, never twice
 * - `message` `{data, ack}`: a message that is not in a stream (or any frame of a plain connection)
 * - `joined` `{stream, epoch, offset, recovered, gap, latest}`
 * - `unrecovered` `{stream, gap, epoch, offset}`: messages of `stream` were missed; refetch its state
 * - `error` `{kind, message}`: `gateway` (an error frame), `not-agreed` (plain connection),
 *   `bad-frame`, `token`, `transport`, `storage`
 *
 * `data` is a string for text payloads and a Uint8Array for binary ones.
 */
export class WsgateClient {
  /**
   * @param {string | string[]} url the gateway's WebSocket URL, `ws://` or `wss://` (query
   *   parameters are kept); or the URLs of every gateway of a cluster: the first connection uses
   *   the first, and each later attempt the next one, round robin
   * @param {WsgateClientOptions} [options]
   */
  constructor(url, options = {}) {
    const urls = Array.isArray(url) ? url.slice() : [url];
    if (urls.length === 0) {
      throw new TypeError('WsgateClient: url must be a ws:// or wss:// URL or a non-empty array of them, got an empty array');
    }
    for (const u of urls) {
      if (typeof u !== 'string' || !/^wss?:\/\//i.test(u)) {
        throw new TypeError(`WsgateClient: url must start with ws:// or wss://, got ${JSON.stringify(u)}`);
      }
    }
    const t = options.token;
    if (t != null && typeof t !== 'string' && typeof t !== 'function') {
      throw new TypeError('WsgateClient: options.token must be a string or a function returning one');
    }
    /** The gateway URLs, in the order they are tried. */
    this.urls = urls;
    /** The URL of the latest connection attempt (before the first, the first URL). */
    this.url = urls[0];
    this._nextUrl = 0; // index in urls of the next attempt
    this._token = t;
    this._transport = options.transport || browserTransport();
    if (!this._transport || typeof this._transport.open !== 'function') {
      throw new TypeError('WsgateClient: options.transport must have an open(url, protocols) method (see WsgateClient.adapters)');
    }
    this._backoff = new Backoff(options.backoff);
    this._pingInterval = options.pingInterval == null ? 25000 : options.pingInterval;
    this._autoAck = options.autoAck !== false;
    this._ackDelay = options.ackDelay == null ? 10 : options.ackDelay;
    this._maxRecoverLength = options.maxRecoverLength == null ? 6000 : options.maxRecoverLength;
    this._storage = options.storage || null;
    this._emitter = new Emitter(EVENTS);

    /** Per stream, oldest update first (Map order), so the newest are sent first when capped. */
    this._positions = new Map();
    this._mergePositions(options.positions);
    this._storageReady = null;
    if (this._storage) this._loadStorage();

    this._state = 'closed';
    this._wanted = false; // connect() called, disconnect() not
    this._attemptId = 0; // bumped by every attempt and by disconnect(), to abandon stale async work
    this._conn = null; // the current connection's state, see _open
    this._retryTimer = null;
    this._warnedPlain = false;
    this._warnedStorage = false;
  }

  /** The current state: `connecting`, `connected`, `disconnected` or `closed`. */
  get state() {
    return this._state;
  }

  /**
   * Listens to an event (see the class description).
   * @param {'state'|'publication'|'message'|'joined'|'unrecovered'|'error'} event
   * @param {Function} fn
   * @returns {() => void} removes the listener
   */
  on(event, fn) {
    return this._emitter.on(event, fn);
  }

  /**
   * Removes a listener.
   * @param {string} event
   * @param {Function} fn
   */
  off(event, fn) {
    this._emitter.off(event, fn);
  }

  /**
   * Connects, and keeps reconnecting until `disconnect()`. While waiting for a reconnect, it
   * retries at once.
   * @returns {this}
   */
  connect() {
    if (this._wanted && this._state !== 'disconnected') return this;
    this._wanted = true;
    if (this._retryTimer) {
      clearTimeout(this._retryTimer);
      this._retryTimer = null;
    }
    this._start();
    return this;
  }

  /**
   * Closes the connection (code 1000) and stops reconnecting. Acknowledgements gathered so far
   * are sent first. Positions are kept: a later `connect()` recovers from them.
   */
  disconnect() {
    this._wanted = false;
    this._attemptId++;
    if (this._retryTimer) {
      clearTimeout(this._retryTimer);
      this._retryTimer = null;
    }
    const conn = this._conn;
    if (conn) {
      this._flushAcks(conn);
      this._teardown(conn);
      conn.socket.close(1000, 'client disconnect');
    }
    if (this._state !== 'closed') this._setState('closed', { code: 1000, reason: 'disconnect() called' });
  }

  /**
   * Closes the current socket without stopping: the client reconnects at once and recovers what
   * it missed. For tests, and for when the application knows the network changed (the old
   * socket may take minutes to notice it is dead).
   * @param {string} [reason]
   */
  dropSocket(reason = 'dropSocket() called') {
    const conn = this._conn;
    if (conn) {
      this._replace(conn, reason, 0);
    } else if (this._wanted && this._retryTimer) {
      this.connect(); // waiting for a retry: retry now
    }
  }

  /**
   * Sends a message to the business: a string as text, an ArrayBuffer or typed array as binary.
   * On a stream connection it is wrapped in a `message` frame, as docs/streams.md requires.
   * @param {string | ArrayBuffer | ArrayBufferView} data
   * @throws {Error} when not connected: wait for the `connected` state, or queue it yourself
   */
  send(data) {
    const conn = this._conn;
    if (!conn || !conn.open) {
      throw new Error(`send(): not connected (state "${this._state}"): wait for the "connected" state event, or queue the message and send it then`);
    }
    let frame;
    if (typeof data === 'string') {
      frame = conn.streams ? JSON.stringify({ type: 'message', data }) : data;
    } else if (isBinary(data)) {
      if (conn.streams) {
        frame = JSON.stringify({ type: 'message', binary: encodeBase64(data) });
      } else {
        const bytes = toBytes(data);
        frame = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
      }
    } else {
      throw new TypeError('send(data): data must be a string, an ArrayBuffer or a typed array (JSON.stringify objects first)');
    }
    conn.socket.send(frame);
  }

  /**
   * Acknowledges a frame's `ack` id (when `autoAck` is false). Ids are gathered for `ackDelay`
   * ms and sent together in one `ack` frame.
   * @param {number | string} id the `ack` of a `publication` or `message` event
   * @returns {boolean} false when the id is unknown, already acknowledged, or from a connection
   *   that has closed since (the gateway no longer waits for it)
   */
  ack(id) {
    const conn = this._conn;
    if (!conn || !conn.ackable.has(id)) return false;
    this._queueAck(conn, id);
    return true;
  }

  /**
   * A copy of the current positions, `{[stream]: {epoch, offset}}`: what to persist.
   * @returns {Record<string, {epoch: string, offset: number}>}
   */
  positions() {
    const out = {};
    for (const [stream, { epoch, offset }] of this._positions) out[stream] = { epoch, offset };
    return out;
  }

  /**
   * Forgets the position of a stream the application left for good, so it is no longer sent
   * in `wsgate_recover`. A later join of that stream starts fresh (no `recovered` field).
   * @param {string} stream e.g. `topic:order:7`
   * @returns {boolean} whether there was a position
   */
  forget(stream) {
    const had = this._positions.delete(stream);
    if (had) this._persist();
    return had;
  }

  // ---- connecting ----------------------------------------------------------------------------

  _start() {
    // _open handles its own failures; this only keeps a bug from vanishing as an unhandled rejection.
    this._open().catch(rethrowLater);
  }

  async _open() {
    const attemptId = ++this._attemptId;
    // Round robin: every socket goes to the next gateway, so a client whose gateway went away
    // reaches another one (which recovers its streams when they share a Redis engine). A
    // token failure opens no socket and does not move on.
    const url = this.urls[this._nextUrl];
    this.url = url;
    this._setState('connecting', { attempt: this._backoff.attempt, url });
    let token;
    try {
      if (this._storageReady) await this._storageReady;
      token = typeof this._token === 'function' ? await this._token() : this._token;
    } catch (err) {
      if (attemptId !== this._attemptId) return;
      this._emitError('token', `options.token failed (${errorText(err)}); retrying with backoff`, { cause: err });
      this._retry({ code: 0, reason: 'token failed', error: errorText(err), url }, this._backoff.next());
      return;
    }
    if (attemptId !== this._attemptId) return; // disconnect() or another attempt meanwhile

    const protocols = [STREAM_PROTOCOL];
    if (token) protocols.push(JWT_PROTOCOL, String(token));
    const recover = chooseRecover(this._positions, this._maxRecoverLength);
    this._nextUrl = (this._nextUrl + 1) % this.urls.length;
    let socket;
    try {
      socket = this._transport.open(withRecoverParam(url, recover.value), protocols);
    } catch (err) {
      this._emitError('transport', `could not open a socket to ${url}: ${errorText(err)}`, { cause: err });
      this._retry({ code: 0, reason: 'open failed', error: errorText(err), url }, this._backoff.next());
      return;
    }
    const conn = {
      socket,
      url, // as given to the constructor (the socket's URL also has wsgate_recover)
      open: false,
      streams: false, // frames are stream frames (else plain payloads)
      assumed: false, // streams assumed because the platform did not say what the server chose
      unsent: recover.unsent, // streams we had positions for but left out of the URL
      ackable: new Set(), // ack ids received and not yet acknowledged
      pendingAcks: [],
      ackTimer: null,
      pingTimer: null,
      stableTimer: null,
      awaitingPong: false,
      lastError: '',
    };
    this._conn = conn;
    socket.onopen = (info) => conn === this._conn && this._handleOpen(conn, info);
    socket.onmessage = (raw) => conn === this._conn && this._handleFrame(conn, raw);
    socket.onclose = (info) => conn === this._conn && this._handleClose(conn, info);
    socket.onerror = (err) => {
      if (conn === this._conn) conn.lastError = (err && err.message) || 'socket error';
    };
  }

  _handleOpen(conn, info) {
    const protocol = info ? info.protocol : null;
    conn.open = true;
    if (protocol === STREAM_PROTOCOL) {
      conn.streams = true;
    } else if (protocol == null) {
      conn.streams = true;
      conn.assumed = true;
    } else {
      this._warnPlain(protocol);
    }
    conn.stableTimer = setTimeout(() => this._backoff.reset(), STABLE_AFTER_MS);
    if (conn.streams) this._startPing(conn);
    this._setState('connected', { protocol: protocol == null ? null : protocol, streams: conn.streams, url: conn.url });
  }

  _handleClose(conn, info) {
    this._teardown(conn);
    const details = {
      code: info && typeof info.code === 'number' ? info.code : 1006,
      reason: (info && info.reason) || '',
      error: conn.lastError,
      url: conn.url,
    };
    if (this._wanted) {
      this._retry(details, this._backoff.next());
    } else {
      this._setState('closed', details);
    }
  }

  /** Stops using a connection that is still open, and reconnects after `delay` ms. */
  _replace(conn, reason, delay) {
    this._flushAcks(conn);
    this._teardown(conn);
    conn.socket.close(1000, reason);
    this._retry({ code: 1000, reason, error: '', url: conn.url }, delay);
  }

  _retry(details, delay) {
    this._setState('disconnected', { ...details, delay, attempt: this._backoff.attempt });
    if (!this._wanted) return; // a state listener called disconnect()
    this._retryTimer = setTimeout(() => {
      this._retryTimer = null;
      if (this._wanted) this._start();
    }, delay);
  }

  /** Forgets a connection: timers, handlers, unsent acks (their ids die with the connection). */
  _teardown(conn) {
    clearTimeout(conn.stableTimer);
    clearTimeout(conn.ackTimer);
    clearInterval(conn.pingTimer);
    conn.pendingAcks = [];
    conn.ackable.clear();
    conn.open = false;
    const s = conn.socket;
    s.onopen = s.onmessage = s.onclose = s.onerror = null;
    if (this._conn === conn) this._conn = null;
  }

  _startPing(conn) {
    const every = this._pingInterval;
    if (!(every > 0)) return;
    conn.pingTimer = setInterval(() => {
      if (conn !== this._conn) return;
      if (conn.awaitingPong) {
        // Mini-programs and sleeping phones can keep a dead socket "open" for minutes.
        this._replace(conn, `no frame from the gateway for ${every} ms after a ping`, this._backoff.next());
        return;
      }
      conn.awaitingPong = true;
      this._sendFrame(conn, { type: 'ping' });
    }, every);
  }

  // ---- receiving -----------------------------------------------------------------------------

  _handleFrame(conn, raw) {
    conn.awaitingPong = false; // any frame proves the connection alive
    this._backoff.reset(); // and that the gateway accepted us: the next outage starts afresh
    if (!conn.streams) {
      this._deliverPlain(conn, raw);
      return;
    }
    let frame = null;
    if (typeof raw === 'string') {
      try {
        frame = JSON.parse(raw);
      } catch {
        frame = null;
      }
    }
    const isFrame = frame !== null && typeof frame === 'object' && !Array.isArray(frame) && typeof frame.type === 'string';
    if (conn.assumed) {
      if (!isFrame || !KNOWN_TYPES.has(frame.type)) {
        // The platform could not tell us the subprotocol, and this is no stream frame: the
        // gateway did not agree. Plain payloads from now on.
        conn.streams = false;
        conn.assumed = false;
        clearInterval(conn.pingTimer);
        this._warnPlain(null);
        this._deliverPlain(conn, raw);
        return;
      }
      conn.assumed = false;
    }
    if (!isFrame) {
      if (typeof raw !== 'string') {
        this._deliverPlain(conn, raw); // not in the protocol, but better delivered than lost
      } else {
        this._emitError('bad-frame', `the gateway sent a text frame that is not a JSON object with a "type": ${preview(raw)}`);
      }
      return;
    }
    switch (frame.type) {
      case 'publication':
        this._onPublication(conn, frame);
        break;
      case 'joined':
        this._onJoined(conn, frame);
        break;
      case 'message':
        this._onMessage(conn, frame);
        break;
      case 'error':
        this._emitError('gateway', `the gateway refused a frame this client sent: ${frame.message}`, { frame });
        break;
      default:
        // pong, and types of later protocol versions: nothing to do.
        break;
    }
  }

  _onPublication(conn, f) {
    const { stream, epoch, offset } = f;
    const data = payloadOf(f);
    if (typeof stream !== 'string' || typeof epoch !== 'string' || !isOffset(offset) || data === undefined) {
      this._emitError('bad-frame', `malformed publication frame (needs stream, epoch, offset and data or binary): ${preview(JSON.stringify(f))}`);
      return;
    }
    const ack = this._noteAck(conn, f.ack);
    if (isDuplicate(this._positions.get(stream), epoch, offset)) {
      // Already delivered (a replay overlapping what arrived live): the application handled
      // it then, so it is acknowledged without asking the application again.
      if (ack !== undefined) this._queueAck(conn, ack);
      return;
    }
    const result = this._emitter.emit('publication', { stream, epoch, offset, data, ack });
    // After the handlers: a persisted position never runs ahead of what the page handled.
    this._setPosition(stream, epoch, offset);
    if (ack !== undefined && this._autoAck) this._ackWhenHandled(conn, ack, result);
  }

  _onJoined(conn, f) {
    const { stream, epoch, offset } = f;
    if (typeof stream !== 'string' || typeof epoch !== 'string' || !isOffset(offset)) {
      this._emitError('bad-frame', `malformed joined frame (needs stream, epoch and offset): ${preview(JSON.stringify(f))}`);
      return;
    }
    let recovered = typeof f.recovered === 'boolean' ? f.recovered : undefined;
    let gap = typeof f.gap === 'string' ? f.gap : undefined;
    if (recovered === undefined && conn.unsent.has(stream)) {
      // We had a position but left it out of the URL (too many streams): whatever happened
      // meanwhile was not replayed, so this is a gap like any other.
      recovered = false;
      gap = 'unsent';
    }
    conn.unsent.delete(stream);
    // A cache-mode stream's latest message came just before: the page holds the current value,
    // which is all such a stream promises, so there is nothing to refetch.
    const latest = f.latest === true;
    this._setPosition(stream, epoch, offset);
    this._emitter.emit('joined', { stream, epoch, offset, recovered, gap, latest });
    if (recovered === false && !latest) this._emitter.emit('unrecovered', { stream, gap, epoch, offset });
  }

  _onMessage(conn, f) {
    const data = payloadOf(f);
    if (data === undefined) {
      this._emitError('bad-frame', `malformed message frame (needs data or binary): ${preview(JSON.stringify(f))}`);
      return;
    }
    const ack = this._noteAck(conn, f.ack);
    const result = this._emitter.emit('message', { data, ack });
    if (ack !== undefined && this._autoAck) this._ackWhenHandled(conn, ack, result);
  }

  _deliverPlain(conn, raw) {
    const data = typeof raw === 'string' ? raw : toBytes(raw);
    this._emitter.emit('message', { data, ack: undefined });
  }

  // ---- acknowledgements ----------------------------------------------------------------------

  _noteAck(conn, id) {
    if (typeof id !== 'number' && typeof id !== 'string') return undefined;
    if (conn.ackable.size >= MAX_ACKABLE) conn.ackable.delete(conn.ackable.values().next().value);
    conn.ackable.add(id);
    return id;
  }

  _ackWhenHandled(conn, id, { threw, pending }) {
    if (threw) return; // not handled: the business sees UNACKED, which is the truth
    if (pending.length === 0) {
      this._queueAck(conn, id);
      return;
    }
    Promise.all(pending).then(
      () => this._queueAck(conn, id),
      (err) => rethrowLater(err),
    );
  }

  _queueAck(conn, id) {
    if (conn !== this._conn || !conn.ackable.delete(id)) return;
    conn.pendingAcks.push(id);
    if (conn.pendingAcks.length >= MAX_ACK_IDS) {
      this._flushAcks(conn);
    } else if (!conn.ackTimer) {
      conn.ackTimer = setTimeout(() => this._flushAcks(conn), this._ackDelay);
    }
  }

  _flushAcks(conn) {
    clearTimeout(conn.ackTimer);
    conn.ackTimer = null;
    while (conn.pendingAcks.length > 0) {
      const ids = conn.pendingAcks.splice(0, MAX_ACK_IDS);
      this._sendFrame(conn, { type: 'ack', ids });
    }
  }

  _sendFrame(conn, frame) {
    if (!conn.open || !conn.streams) return;
    try {
      conn.socket.send(JSON.stringify(frame));
    } catch (err) {
      conn.lastError = errorText(err); // closing: the close event follows
    }
  }

  // ---- positions -----------------------------------------------------------------------------

  _setPosition(stream, epoch, offset) {
    this._positions.delete(stream); // re-insert: Map order is "least recently updated first"
    this._positions.set(stream, { epoch, offset });
    this._persist();
  }

  _persist() {
    if (!this._storage) return;
    try {
      this._storage.set(this.positions());
    } catch (err) {
      this._storageFailed('set', err);
    }
  }

  _mergePositions(object) {
    if (!object || typeof object !== 'object') return;
    for (const stream of Object.keys(object)) {
      const position = normalizePosition(object[stream]);
      if (position) {
        this._positions.delete(stream);
        this._positions.set(stream, position);
      }
    }
  }

  _loadStorage() {
    let got;
    try {
      got = this._storage.get();
    } catch (err) {
      this._storageFailed('get', err);
      return;
    }
    if (got && typeof got.then === 'function') {
      // Asynchronous storage: the first connection waits for it.
      this._storageReady = Promise.resolve(got).then(
        (value) => this._mergePositions(value),
        (err) => this._storageFailed('get', err),
      ).then(() => {
        this._storageReady = null;
      });
    } else {
      this._mergePositions(got);
    }
  }

  _storageFailed(op, err) {
    if (this._warnedStorage) return;
    this._warnedStorage = true;
    this._emitError('storage', `options.storage.${op}() failed (${errorText(err)}); positions are kept in memory only`, { cause: err });
  }

  // ---- events --------------------------------------------------------------------------------

  _setState(state, details) {
    this._state = state;
    this._emitter.emit('state', { state, ...details });
  }

  _warnPlain(protocol) {
    if (this._warnedPlain) return;
    this._warnedPlain = true;
    const answered = protocol == null ? 'a frame that is not a stream frame' : protocol ? `"${protocol}"` : 'no subprotocol';
    this._emitError(
      'not-agreed',
      `the server did not agree on ${STREAM_PROTOCOL} (it answered ${answered}): frames are delivered as plain ` +
        '"message" events, with no recovery, deduplication or acknowledgements. Use a wsgate gateway with streams ' +
        '(docs/streams.md) to get them.',
      { protocol },
    );
  }

  _emitError(kind, message, extra = {}) {
    const event = { kind, message, ...extra };
    if (this._emitter.count('error') > 0) {
      this._emitter.emit('error', event);
    } else if (typeof console !== 'undefined') {
      console.warn('wsgate-client: ' + message);
    }
  }
}

/** The transports, as factories: `WsgateClient.adapters.wx()`. */
WsgateClient.adapters = { browser: browserTransport, wx: wxTransport, uni: uniTransport };

function payloadOf(frame) {
  if (typeof frame.data === 'string') return frame.data;
  if (typeof frame.binary === 'string') {
    try {
      return decodeBase64(frame.binary);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function isOffset(value) {
  return Number.isSafeInteger(value) && value >= 0;
}

function errorText(err) {
  return err && err.message ? err.message : String(err);
}

function preview(text) {
  return text.length > 200 ? JSON.stringify(text.slice(0, 200)) + '…' : JSON.stringify(text);
}
