// The page: log in, connect to the gateway with the JWT, show this user's messages.
//
// libs/wsgate.js is the JS client's build (clients/js: `npm run build`, then copy
// dist/wsgate.js to miniprogram/libs/wsgate.js; see the README).
const WsgateClient = require('../../libs/wsgate.js');

const app = getApp();

Page({
  data: {
    user: '',
    state: 'logging in',
    error: '',
    messages: [], // newest first: {id, text, time}
  },

  onLoad() {
    app
      .login()
      .then((session) => {
        this.setData({ user: session.user, state: 'connecting' });
        const positionsKey = `wsgate-positions:${session.user}`;
        const client = new WsgateClient(session.ws, {
          transport: WsgateClient.adapters.wx(),
          // Sent in the handshake (subprotocol wsgate.jwt): no cookies needed.
          token: () => app.token(),
          // Where this user's stream was, kept across restarts of the mini-program: a reconnect
          // gets what was published meanwhile (the gateway keeps each user's last 50 messages).
          storage: {
            get: () => wx.getStorageSync(positionsKey) || {},
            set: (positions) => wx.setStorageSync(positionsKey, positions),
          },
        });
        // The user's messages are a stream (wsgate.toml `stream`): `publication`. Without the
        // stream rule they would come as `message`; show both.
        client.on('publication', ({ data }) => this.show(data));
        client.on('message', ({ data }) => this.show(data));
        client.on('unrecovered', () => this.setData({ error: 'Some messages were missed while offline; pull to refresh.' }));
        client.on('state', (s) => this.setData({ state: s.state }));
        client.on('error', (e) => this.setData({ error: `${e.kind}: ${e.message}` }));
        this.client = client;
        client.connect();
        // When the network comes back, reconnect now instead of waiting for the dead socket.
        if (wx.onNetworkStatusChange) {
          wx.onNetworkStatusChange(({ isConnected }) => isConnected && client.dropSocket('network changed'));
        }
      })
      .catch((err) => this.setData({ state: 'not logged in', error: err.message }));
  },

  onUnload() {
    if (this.client) this.client.disconnect();
  },

  show(data) {
    let message;
    try {
      message = JSON.parse(data);
    } catch (e) {
      message = { id: `local-${Date.now()}`, text: String(data) };
    }
    const time = new Date().toTimeString().slice(0, 8);
    const messages = [{ id: message.id, text: message.text, time }].concat(this.data.messages).slice(0, 100);
    this.setData({ messages });
  },
});
