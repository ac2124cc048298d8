// The default transport: the platform's WebSocket (browsers, Deno, Bun, Node 22+), or any
// constructor with the same API passed explicitly (the `ws` package on Node 20).

/**
 * The one small interface the client uses, whatever the platform.
 *
 * @typedef {object} Transport
 * @property {string} name
 * @property {(url: string, protocols: string[]) => TransportSocket} open opens a socket; events
 *   arrive later, on the handlers the client sets right after `open` returns
 *
 * @typedef {object} TransportSocket
 * @property {(data: string | ArrayBuffer) => void} send
 * @property {(code?: number, reason?: string) => void} close
 * @property {((info: {protocol: string | null}) => void) | null} onopen the subprotocol the
 *   server selected: '' for none, null when the platform does not say
 * @property {((data: string | ArrayBuffer) => void) | null} onmessage
 * @property {((info: {code: number, reason: string}) => void) | null} onclose called once
 * @property {((error: {message: string}) => void) | null} onerror
 */

/**
 * A transport over a WHATWG WebSocket.
 * @param {Function} [WebSocketImpl] a WebSocket constructor; default: the global `WebSocket`,
 *   looked up when a socket is opened
 * @returns {Transport}
 */
export function browserTransport(WebSocketImpl) {
  return {
    name: 'browser',
    open(url, protocols) {
      const Impl = WebSocketImpl || (typeof WebSocket !== 'undefined' ? WebSocket : undefined);
      if (typeof Impl !== 'function') {
        throw new Error(
          'there is no global WebSocket here: pass options.transport, e.g. ' +
            'WsgateClient.adapters.wx() in a WeChat mini-program, WsgateClient.adapters.uni() in uni-app, ' +
            "or WsgateClient.adapters.browser(require('ws')) on Node before 22",
        );
      }
      const ws = new Impl(url, protocols);
      ws.binaryType = 'arraybuffer';
      /** @type {TransportSocket} */
      const socket = {
        onopen: null,
        onmessage: null,
        onclose: null,
        onerror: null,
        send(data) {
          ws.send(data);
        },
        close(code, reason) {
          try {
            ws.close(code, reason);
          } catch {
            // A code the platform refuses, or a reason over 123 bytes: close anyway.
            ws.close();
          }
        },
      };
      ws.onopen = () => socket.onopen && socket.onopen({ protocol: ws.protocol || '' });
      ws.onmessage = (event) => socket.onmessage && socket.onmessage(event.data);
      ws.onclose = (event) =>
        socket.onclose && socket.onclose({ code: event.code, reason: event.reason || '' });
      ws.onerror = (event) =>
        socket.onerror &&
        socket.onerror({
          // Browsers give no detail on purpose; the developer tools' network tab has the status.
          message: (event && (event.message || (event.error && event.error.message))) || 'WebSocket error',
        });
      return socket;
    },
  };
}
