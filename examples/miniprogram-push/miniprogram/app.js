// The mini-program: log in (wx.login, then the login backend hands out a JWT for the gateway),
// and keep the session for the pages.
const config = require('./config.js');

App({
  globalData: { session: null },

  /**
   * Logs in: wx.login gives a one-time code, the login backend (login.mjs) turns it into the
   * user id and a JWT, and says where the gateway is. Resolves {user, token, ws, expires_at}.
   */
  login() {
    return new Promise((resolve, reject) => {
      wx.login({
        success: ({ code }) => {
          wx.request({
            url: config.loginUrl,
            method: 'POST',
            data: { code },
            success: (res) => {
              if (res.statusCode !== 200 || !res.data || !res.data.token) {
                reject(new Error(`login failed (${res.statusCode}): ${JSON.stringify(res.data)}`));
                return;
              }
              this.globalData.session = res.data;
              resolve(res.data);
            },
            fail: (err) => reject(new Error(`login request failed: ${err.errMsg}`)),
          });
        },
        fail: (err) => reject(new Error(`wx.login failed: ${err.errMsg}`)),
      });
    });
  },

  /**
   * The JWT for the next WebSocket handshake. The JS client calls this before every connection
   * attempt, so a token that is about to expire is replaced by logging in again.
   */
  token() {
    const session = this.globalData.session;
    if (session && session.expires_at - Date.now() / 1000 > 60) return session.token;
    return this.login().then((s) => s.token);
  },
});
