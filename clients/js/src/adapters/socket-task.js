// What WeChat mini-programs and uni-app have in common: `connectSocket(options)` returns a
// SocketTask with onOpen/onMessage/onClose/onError, send({data}) and close({code, reason}).

/**
 * A transport over a mini-program style `connectSocket`.
 * @param {string} platform 'wx' or 'uni', for messages
 * @param {{connectSocket: Function} | undefined} api the platform object
 * @param {object} extra more `connectSocket` options (header, timeout, tcpNoDelay, ...)
 * @returns {import('./browser.js').Transport}
 */
export function socketTaskTransport(platform, api, extra) {
  if (!api || typeof api.connectSocket !== 'function') {
    throw new Error(
      `${platform}.connectSocket is not available: call this adapter inside the ${platform === 'wx' ? 'WeChat mini-program' : 'uni-app'} ` +
        `runtime, or pass the platform object explicitly (${platform}Transport(${platform}))`,
    );
  }
  return {
    name: platform,
    open(url, protocols) {
      return openSocketTask(platform, api, extra, url, protocols);
    },
  };
}

function openSocketTask(platform, api, extra, url, protocols) {
  let closed = false;
  let errorTimer = null;
  /** @type {import('./browser.js').TransportSocket} */
  const socket = {
    onopen: null,
    onmessage: null,
    onclose: null,
    onerror: null,
    send(data) {
      task.send({
        data,
        fail: (res) => socket.onerror && socket.onerror({ message: errMsg(res, 'send failed') }),
      });
    },
    close(code, reason) {
      try {
        task.close({ code, reason });
      } catch {
        // Already closed, or a code the platform refuses: nothing more to do.
      }
      finish(code || 1000, reason || '');
    },
  };

  // onClose is called once at most, whatever the platform does: some versions report a failed
  // connection with onError (or the `fail` callback) and never call onClose.
  function finish(code, reason) {
    if (closed) return;
    closed = true;
    if (errorTimer) clearTimeout(errorTimer);
    const onclose = socket.onclose;
    if (onclose) onclose({ code: typeof code === 'number' ? code : 1006, reason: reason || '' });
  }

  const task = api.connectSocket({
    ...extra,
    url,
    protocols,
    // uni-app returns the SocketTask only when success or complete is given.
    complete: () => {},
    // Deferred: `fail` may run before connectSocket returns, before handlers are set.
    fail: (res) => setTimeout(() => {
      const message = errMsg(res, 'connectSocket failed');
      if (socket.onerror) socket.onerror({ message });
      finish(1006, message);
    }, 0),
  });
  if (!task || typeof task.onOpen !== 'function') {
    throw new Error(`${platform}.connectSocket returned no SocketTask: this base library is too old for wsgate-client`);
  }
  task.onOpen((res) => socket.onopen && socket.onopen({ protocol: headerProtocol(res && res.header) }));
  task.onMessage((res) => socket.onmessage && socket.onmessage(res && res.data));
  task.onClose((res) => finish(res && res.code, res && res.reason));
  task.onError((res) => {
    const message = errMsg(res, 'socket error');
    if (socket.onerror) socket.onerror({ message });
    if (!closed && !errorTimer) errorTimer = setTimeout(() => finish(1006, message), 1000);
  });
  return socket;
}

/**
 * The subprotocol from the handshake response headers that onOpen gives on recent base
 * libraries. When they do not include it, null: "unknown", and the client assumes the gateway
 * agreed (a frame that is not a stream frame switches it to plain payloads).
 * @param {unknown} header
 * @returns {string | null}
 */
export function headerProtocol(header) {
  if (!header || typeof header !== 'object') return null;
  for (const name of Object.keys(header)) {
    if (name.toLowerCase() === 'sec-websocket-protocol') return String(header[name]).trim();
  }
  return null;
}

function errMsg(res, fallback) {
  return (res && (res.errMsg || res.message)) || fallback;
}
