// What both pages share: calling the app, the notices area and the connection line.
// `window.view` is what the page shows, kept for the end-to-end test to read.

export const view = (window.view = { state: 'new', notices: [], events: [] });

export async function api(method, path) {
  const res = await fetch(path, { method });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
  return res.json();
}

/** Notices from RabbitMQ ws.notice: plain messages (not a stream) to every connection. */
export function showNotices(client) {
  client.on('message', ({ data }) => {
    view.notices.push(data);
    const li = document.createElement('li');
    li.textContent = `${new Date().toLocaleTimeString()} — ${data}`;
    document.getElementById('notices').prepend(li);
  });
}

/** The connection's state under the page's title, and a log of events for the test. */
export function showState(client) {
  const line = document.getElementById('conn');
  client.on('state', (s) => {
    view.state = s.state;
    view.events.push(`state:${s.state}`);
    line.textContent = s.state === 'disconnected' ? `disconnected (${s.code || 'no code'}), reconnecting in ${s.delay} ms` : s.state;
  });
  client.on('joined', (j) => view.events.push(`joined:${j.stream}:${j.recovered}`));
  client.on('error', (e) => view.events.push(`error:${e.kind}:${e.message}`));
}
