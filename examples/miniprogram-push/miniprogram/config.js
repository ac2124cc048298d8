// Where the login backend (login.mjs) is. In the WeChat developer tools during development
// "do not check domain names" (project.config.json: urlCheck false) lets this be plain http on
// your machine; a released mini-program needs https here, and the gateway's wss:// host in the
// socket domain list (see the README).
module.exports = {
  loginUrl: 'http://127.0.0.1:3002/login',
};
