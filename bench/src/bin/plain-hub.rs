//! `plain-hub`: a minimal WebSocket broadcast hub written straight on tokio-tungstenite.
//!
//! This is one of the two *peer* servers the load tool (`wsgate-bench`) runs side by side with
//! wsgate. It has no gateway, no worker link and no business hop: a client socket, a bounded queue
//! and a writer task, nothing else. It is the reference for "how close to the floor" wsgate gets
//! on the same machine: what a careful team writes by hand today with the usual Rust crates.
//! It is deliberately shaped the straightforward way, neither tuned nor pessimised:
//!
//! * per socket a bounded tokio mpsc queue (capacity [`QUEUE_CAPACITY`]) of
//!   [`Message`]s; a broadcast builds its message once from a `Utf8Bytes` and clones it per
//!   recipient (a refcount bump, not a copy of the payload);
//! * per socket a writer task that takes one message, `feed`s whatever else is already queued and
//!   does one `flush` per burst;
//! * a full queue drops that message for that socket and counts it in `dropped`: the publisher
//!   never waits for a slow client;
//! * the reader answers echo through the same queue; pings and close handshakes are answered by
//!   tungstenite itself; default multi-thread runtime; `TCP_NODELAY` on every socket, the HTTP
//!   ones included (as wsgate sets it). The one setting changed from tungstenite's
//!   defaults is a 4 KiB read buffer ([`READ_BUFFER`]): with the default 128 KiB, tungstenite
//!   0.30 zero-fills the whole buffer on the first read and an idle socket costs ~130 KiB, which
//!   nobody who measures would ship; 4 KiB is what the issue's reference hub used (~8.8 KiB per
//!   idle socket);
//! * the registry is a `Mutex<HashMap>` of queues plus a topic map.
//!
//! The contract (shared with `bench/peers/node-hub`):
//!
//! ```text
//! plain-hub --listen 127.0.0.1:0 --http 127.0.0.1:0
//! stdout, once both listeners are bound:  ready ws=127.0.0.1:PORT http=127.0.0.1:PORT
//! WebSocket on --listen, any path; `?topic=NAME` (repeatable) subscribes the socket for its life;
//!   every text/binary message is echoed to its sender with the same opcode.
//! HTTP/1.1 on --http:
//!   POST /broadcast              raw body -> one text frame to every socket  {"recipients":N}
//!   POST /publish?topic=NAME     raw body -> the topic's subscribers only    {"recipients":N}
//!   GET  /stats                  {"connections":N,"dropped":N}
//!   body not UTF-8 or no topic -> 400; anything else -> 404
//! ```
//!
//! Nothing is logged per connection; SIGTERM or SIGINT exits 0.

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Bytes of the read buffer every socket allocates up front.
const READ_BUFFER: usize = 4 * 1024;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_tungstenite::tungstenite::handshake::server::{
    ErrorResponse, Request, Response as WsResponse,
};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Messages a socket may have waiting before further broadcasts to it are dropped.
const QUEUE_CAPACITY: usize = 1024;

/// A minimal tokio-tungstenite broadcast hub: the reference floor for wsgate's benchmarks.
#[derive(Debug, Parser)]
#[command(name = "plain-hub", version)]
struct Args {
    /// WebSocket listener, host:port (port 0 picks a free port).
    #[arg(long, value_name = "HOST:PORT")]
    listen: String,
    /// HTTP listener for /broadcast, /publish and /stats, host:port (port 0 picks a free port).
    #[arg(long, value_name = "HOST:PORT")]
    http: String,
}

/// Every connected socket's queue, and who is subscribed to what.
#[derive(Debug, Default)]
struct Registry {
    sockets: HashMap<u64, mpsc::Sender<Message>>,
    topics: HashMap<String, HashSet<u64>>,
}

#[derive(Debug, Default)]
struct Hub {
    registry: Mutex<Registry>,
    next_id: AtomicU64,
    dropped: AtomicU64,
}

impl Hub {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters here, so keep serving.
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn register(&self, id: u64, tx: mpsc::Sender<Message>, topics: &[String]) {
        let mut reg = self.registry();
        reg.sockets.insert(id, tx);
        for topic in topics {
            reg.topics.entry(topic.clone()).or_default().insert(id);
        }
    }

    fn unregister(&self, id: u64, topics: &[String]) {
        let mut reg = self.registry();
        reg.sockets.remove(&id);
        for topic in topics {
            if let Some(set) = reg.topics.get_mut(topic) {
                set.remove(&id);
                if set.is_empty() {
                    reg.topics.remove(topic);
                }
            }
        }
    }

    /// Queues `msg` on one socket; a full queue drops it for that socket.
    fn offer(&self, tx: &mpsc::Sender<Message>, msg: &Message) -> bool {
        match tx.try_send(msg.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
            // The socket is closing; it is about to leave the registry.
            Err(TrySendError::Closed(_)) => false,
        }
    }

    fn broadcast(&self, msg: &Message) -> usize {
        let reg = self.registry();
        reg.sockets
            .values()
            .filter(|tx| self.offer(tx, msg))
            .count()
    }

    fn publish(&self, topic: &str, msg: &Message) -> usize {
        let reg = self.registry();
        let Some(ids) = reg.topics.get(topic) else {
            return 0;
        };
        ids.iter()
            .filter_map(|id| reg.sockets.get(id))
            .filter(|tx| self.offer(tx, msg))
            .count()
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("plain-hub: cannot start the tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let ws_listener = match TcpListener::bind(args.listen.as_str()).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "plain-hub: cannot listen on {} (--listen): {e}",
                args.listen
            );
            return ExitCode::from(2);
        }
    };
    let http_listener = match TcpListener::bind(args.http.as_str()).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("plain-hub: cannot listen on {} (--http): {e}", args.http);
            return ExitCode::from(2);
        }
    };
    let (ws_addr, http_addr) = match (ws_listener.local_addr(), http_listener.local_addr()) {
        (Ok(w), Ok(h)) => (w, h),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("plain-hub: cannot read the bound listener addresses: {e}");
            return ExitCode::from(2);
        }
    };

    let shutdown = match shutdown_signal() {
        Ok(fut) => fut,
        Err(e) => {
            eprintln!("plain-hub: cannot install the SIGTERM/SIGINT handlers: {e}");
            return ExitCode::from(2);
        }
    };

    let hub = Arc::new(Hub::default());
    let app = Router::new()
        .route("/broadcast", post(http_broadcast))
        .route("/publish", post(http_publish))
        .route("/stats", get(http_stats))
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .with_state(hub.clone());

    tokio::spawn(accept_loop(ws_listener, hub));
    // TCP_NODELAY on the publish sockets too, as on the WebSocket ones: without it a publisher's
    // keep-alive requests now and then wait on Nagle's algorithm, which a careful team turns off.
    let http_listener = http_listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let http = tokio::spawn(async move { axum::serve(http_listener, app).await });

    {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let printed =
            writeln!(out, "ready ws={ws_addr} http={http_addr}").and_then(|()| out.flush());
        if let Err(e) = printed {
            eprintln!("plain-hub: cannot write the ready line to stdout: {e}");
            return ExitCode::from(2);
        }
    }

    tokio::select! {
        () = shutdown => ExitCode::SUCCESS,
        served = http => {
            match served {
                Ok(Ok(())) => eprintln!("plain-hub: the HTTP server stopped unexpectedly"),
                Ok(Err(e)) => eprintln!("plain-hub: the HTTP server failed: {e}"),
                Err(e) => eprintln!("plain-hub: the HTTP server task failed: {e}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// Registers for SIGTERM and SIGINT now (so a signal right after the ready line is not missed)
/// and returns a future that resolves when either arrives.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

async fn accept_loop(listener: TcpListener, hub: Arc<Hub>) {
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                tokio::spawn(serve_socket(stream, hub.clone()));
            }
            // Usually EMFILE or a connection reset before accept: back off briefly, keep serving.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// One WebSocket connection: handshake, register, read (echo) until the client goes away.
#[expect(
    clippy::result_large_err,
    reason = "the handshake callback's signature is tungstenite's Callback trait"
)]
async fn serve_socket(stream: TcpStream, hub: Arc<Hub>) {
    let _ = stream.set_nodelay(true);
    let mut topics = Vec::new();
    let callback = |req: &Request, resp: WsResponse| -> Result<WsResponse, ErrorResponse> {
        if let Some(query) = req.uri().query() {
            topics = query_values(query, "topic");
        }
        Ok(resp)
    };
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let Ok(ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await
    else {
        return;
    };

    let (sink, mut stream) = ws.split();
    let (tx, rx) = mpsc::channel::<Message>(QUEUE_CAPACITY);
    let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
    hub.register(id, tx.clone(), &topics);
    tokio::spawn(write_loop(sink, rx));

    while let Some(Ok(msg)) = stream.next().await {
        match msg {
            Message::Text(_) | Message::Binary(_) => {
                // Echo through the socket's own queue; a client that floods echoes waits for
                // its own writer rather than losing its replies.
                if tx.send(msg).await.is_err() {
                    break;
                }
            }
            // Pings, pongs and the close handshake are answered by tungstenite.
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => {}
        }
    }

    // Dropping the last senders ends the writer once it has written what is queued.
    hub.unregister(id, &topics);
}

/// Writes queued messages: one `recv`, then everything already queued, then one flush.
async fn write_loop<S>(mut sink: S, mut rx: mpsc::Receiver<Message>)
where
    S: futures_util::Sink<Message> + Unpin,
{
    while let Some(first) = rx.recv().await {
        if sink.feed(first).await.is_err() {
            return;
        }
        while let Ok(next) = rx.try_recv() {
            if sink.feed(next).await.is_err() {
                return;
            }
        }
        if sink.flush().await.is_err() {
            return;
        }
    }
    let _ = sink.close().await;
}

/// All values of `key` in a URL query string, percent- and `+`-decoded (as axum's `Query` does).
fn query_values(query: &str, key: &str) -> Vec<String> {
    query
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == key).then(|| percent_decode(v))
        })
        .filter(|v| !v.is_empty())
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The request body as one text frame, built once and shared by every recipient.
fn text_message(body: Bytes) -> Option<Message> {
    Utf8Bytes::try_from(body).ok().map(Message::Text)
}

fn bad_request(error: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": error })),
    )
        .into_response()
}

async fn http_broadcast(State(hub): State<Arc<Hub>>, body: Bytes) -> Response {
    match text_message(body) {
        Some(msg) => axum::Json(json!({"recipients": hub.broadcast(&msg)})).into_response(),
        None => bad_request("the body must be UTF-8 text"),
    }
}

async fn http_publish(
    State(hub): State<Arc<Hub>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let topic = query
        .as_deref()
        .and_then(|q| query_values(q, "topic").into_iter().next());
    let Some(topic) = topic else {
        return bad_request("missing ?topic=NAME");
    };
    match text_message(body) {
        Some(msg) => axum::Json(json!({"recipients": hub.publish(&topic, &msg)})).into_response(),
        None => bad_request("the body must be UTF-8 text"),
    }
}

async fn http_stats(State(hub): State<Arc<Hub>>) -> Response {
    let connections = hub.registry().sockets.len();
    let dropped = hub.dropped.load(Ordering::Relaxed);
    axum::Json(json!({"connections": connections, "dropped": dropped})).into_response()
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"error": "not found"})),
    )
        .into_response()
}
