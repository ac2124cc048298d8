// WeChat mini-programs: wx.connectSocket and its SocketTask.

import { socketTaskTransport } from './socket-task.js';

/**
 * A transport for WeChat mini-programs.
 *
 * The SocketTask does not expose the selected subprotocol. When `onOpen` gives the response
 * headers (recent base libraries), `Sec-WebSocket-Protocol` is read from them; otherwise the
 * client assumes the gateway agreed on `wsgate.stream.v1`, and falls back to plain payloads if
 * a frame proves it did not.
 *
 * @param {object} [wxApi] the `wx` object; default: the global `wx`
 * @param {object} [options] more `wx.connectSocket` options: `header`, `timeout`, `tcpNoDelay`, ...
 * @returns {import('./browser.js').Transport}
 */
export function wxTransport(wxApi, options = {}) {
  return socketTaskTransport('wx', wxApi || (typeof wx !== 'undefined' ? wx : undefined), options);
}
