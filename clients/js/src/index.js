// The package entry: the client, its adapters, and the helpers an application may want.

export { WsgateClient, STREAM_PROTOCOL, JWT_PROTOCOL } from './client.js';
export { browserTransport } from './adapters/browser.js';
export { wxTransport } from './adapters/wx.js';
export { uniTransport } from './adapters/uni.js';
export { encodeBase64, decodeBase64, utf8Encode, utf8Decode } from './base64.js';
export { encodeRecover, withRecoverParam, RECOVER_PARAM } from './positions.js';
