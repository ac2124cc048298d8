// uni-app (every target): uni.connectSocket and its SocketTask, the same shape as WeChat's.

import { socketTaskTransport } from './socket-task.js';

/**
 * A transport for uni-app. `uni.connectSocket` returns its SocketTask only when given a
 * `complete` (or `success`) callback, which this adapter always passes.
 *
 * The subprotocol is read as for WeChat (see wx.js): from `onOpen`'s headers when given,
 * otherwise the gateway is assumed to have agreed.
 *
 * @param {object} [uniApi] the `uni` object; default: the global `uni`
 * @param {object} [options] more `uni.connectSocket` options: `header`, ...
 * @returns {import('./browser.js').Transport}
 */
export function uniTransport(uniApi, options = {}) {
  return socketTaskTransport('uni', uniApi || (typeof uni !== 'undefined' ? uni : undefined), options);
}
