//! Test harness: a real gateway in-process on 127.0.0.1:0, real WebSocket clients, real
//! business processes through the SDK, and raw worker links for protocol abuse.
#![allow(dead_code, clippy::unwrap_used)] // test harness: a failed unwrap is a failed test

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::codec::Framed;
pub mod brokers;
pub mod cut;
pub mod dns;
pub mod examples;
pub mod http;
pub mod raw_ws;
pub mod streams;

use wsgate::{Config, Gateway, Stats};
use wsgate_business::{Client, Event, Events};
use wsgate_proto::WorkerCodec;
use wsgate_proto::v1::{ConnClose, ConnMessage, ConnOpen, Envelope, Register, envelope::Body};

/// Whether a test that needs something of the machine (a browser, node, a Redis) can run:
/// `missing` says what is not there. In CI that fails the test (`.ci/run` installs it);
/// elsewhere the test is skipped, saying why.
pub fn can_run(what: &str, missing: Option<String>) -> bool {
    let Some(missing) = missing else {
        return true;
    };
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
        panic!("{what} cannot run in CI: {missing} (.ci/run installs it)");
    }
    eprintln!("skipping {what}: {missing}");
    false
}

/// Runs `node <args>` in `dir` within `limit`, printing what it wrote; fails the test unless
/// it exits 0.
pub async fn run_node(dir: &std::path::Path, args: &[&str], limit: Duration) {
    let run = tokio::process::Command::new("node")
        .args(args)
        .current_dir(dir)
        .kill_on_drop(true)
        .output();
    let out = match tokio::time::timeout(limit, run).await {
        Ok(out) => out.expect("node starts"),
        Err(_) => panic!("node {args:?} did not finish in {limit:?}"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "node {args:?} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

/// What node scripts need that is missing: node itself, the npm packages `packages` in
/// `dir`, Chromium when `browser`.
pub fn node_missing(dir: &std::path::Path, packages: &[&str], browser: bool) -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into());
    if browser && !std::path::Path::new(&chromium).exists() {
        return Some(format!(
            "{chromium} is missing: apt-get install -y chromium"
        ));
    }
    if !runs("node") {
        return Some("node is missing: apt-get install -y nodejs npm".into());
    }
    packages
        .iter()
        .find(|p| !dir.join("node_modules").join(p).exists())
        .map(|p| format!("{p} is not installed: (cd {} && npm ci)", dir.display()))
}

/// Whether `program --version` runs and succeeds here.
pub fn runs(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The longest any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// Polls a condition until it holds (for state with no event to await, like counters).
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    within(what, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

pub struct TestGateway {
    pub ws_addr: SocketAddr,
    pub worker_addr: SocketAddr,
    pub node_id: String,
    pub stats: Arc<Stats>,
    pub cluster: wsgate::ClusterSlot,
    pub api_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

pub fn test_config() -> Config {
    Config {
        ws_addr: "127.0.0.1:0".parse().unwrap(),
        worker_addr: "127.0.0.1:0".parse().unwrap(),
        api_addr: "127.0.0.1:0".parse().unwrap(),
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        node_id: "test-gw".into(),
        drain_timeout: Duration::from_secs(5),
        // Test clients that never answer the close frame would otherwise hold each gateway
        // task (and a test waiting on ConnClose or shutdown) for the default 2 s.
        client_close_linger: Duration::from_millis(300),
        ..Config::default()
    }
}

impl TestGateway {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        init_tracing();
        let mut config = test_config();
        tweak(&mut config);
        let gateway = Gateway::bind(config).await.expect("gateway binds");
        let (stop, stopped) = oneshot::channel::<()>();
        let ws_addr = gateway.ws_addr();
        let worker_addr = gateway.worker_addr();
        let node_id = gateway.node_id().to_owned();
        let stats = gateway.stats();
        let cluster = gateway.cluster();
        let api_addr = gateway.api_addr();
        let grpc_addr = gateway.grpc_addr();
        let task = tokio::spawn(gateway.run(async move {
            let _ = stopped.await;
        }));
        Self {
            ws_addr,
            worker_addr,
            node_id,
            stats,
            cluster,
            api_addr,
            grpc_addr,
            stop: Some(stop),
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.ws_addr)
    }

    /// Starts the shutdown; `finished` waits for `run` to return.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub async fn finished(self) {
        within("the gateway to stop", self.task)
            .await
            .expect("gateway task");
    }

    pub async fn stop(mut self) {
        self.begin_shutdown();
        self.finished().await
    }

    pub fn stat(&self, pick: impl Fn(&Stats) -> &std::sync::atomic::AtomicU64) -> u64 {
        Stats::get(pick(&self.stats))
    }

    /// A business process with the given name, wanting every event.
    pub async fn business(&self, name: &str) -> (Client, EventsExt) {
        let (client, events) = Client::builder(self.worker_addr.to_string())
            .name(name)
            .connect()
            .await
            .expect("business connects");
        (client, EventsExt(events))
    }

    pub async fn client(&self) -> Ws {
        connect(&self.url()).await
    }

    /// A gRPC channel to this gateway's API.
    pub async fn grpc_channel(&self) -> tonic::transport::Channel {
        within(
            "the gRPC connection",
            tonic::transport::Channel::from_shared(format!("http://{}", self.grpc_addr))
                .expect("valid URI")
                .connect(),
        )
        .await
        .expect("the gRPC port accepts")
    }
}

/// The HTTP response a handshake was refused with; being let in fails the test.
pub async fn refusal<R>(
    request: R,
) -> tokio_tungstenite::tungstenite::http::Response<Option<Vec<u8>>>
where
    R: tokio_tungstenite::tungstenite::client::IntoClientRequest + Unpin,
{
    match within(
        "a refused handshake",
        tokio_tungstenite::connect_async(request),
    )
    .await
    {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => *resp,
        Ok(_) => panic!("the handshake was accepted; expected an HTTP refusal"),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
    }
}

/// Expects the handshake to be refused with `status`; returns the body.
pub async fn refused<R>(request: R, status: u16) -> String
where
    R: tokio_tungstenite::tungstenite::client::IntoClientRequest + Unpin,
{
    let resp = refusal(request).await;
    assert_eq!(resp.status(), status, "{resp:?}");
    String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned()
}

/// Connects as soon as the gateway has a seat free: HTTP 503 (the connection limit) is
/// retried, anything else but a 101 fails the test.
pub async fn connect_when_a_seat_is_free(url: &str) -> Ws {
    within("a free seat under the connection limit", async {
        loop {
            match tokio_tungstenite::connect_async(url).await {
                Ok((ws, _)) => return ws,
                Err(tokio_tungstenite::tungstenite::Error::Http(resp)) if resp.status() == 503 => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(e) => panic!("expected 101 or 503, got {e}"),
            }
        }
    })
    .await
}

pub async fn connect(url: &str) -> Ws {
    let (ws, _) = within("a client handshake", tokio_tungstenite::connect_async(url))
        .await
        .expect("client connects");
    ws
}

/// The business side's event stream with test conveniences.
pub struct EventsExt(pub Events);

impl EventsExt {
    /// The next connection event, skipping link status events.
    pub async fn next(&mut self) -> Event {
        within("a business event", async {
            loop {
                match self.0.recv().await.expect("event stream open") {
                    Event::Connected { .. }
                    | Event::Disconnected { .. }
                    | Event::Draining { .. } => continue,
                    e => return e,
                }
            }
        })
        .await
    }

    pub async fn open(&mut self) -> ConnOpen {
        match self.next().await {
            Event::Open(o) => o,
            other => panic!("expected ConnOpen, got {other:?}"),
        }
    }

    pub async fn message(&mut self) -> ConnMessage {
        match self.next().await {
            Event::Message(m) => m,
            other => panic!("expected ConnMessage, got {other:?}"),
        }
    }

    pub async fn close(&mut self) -> ConnClose {
        match self.next().await {
            Event::Close(c) => c,
            other => panic!("expected ConnClose, got {other:?}"),
        }
    }
}

/// The next data message a client receives, as text (binary is shown lossily).
pub async fn recv_text(ws: &mut Ws) -> String {
    within("a client message", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return t.to_string(),
                Some(Ok(Message::Binary(b))) => return String::from_utf8_lossy(&b).into_owned(),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a message, got {other:?}"),
            }
        }
    })
    .await
}

/// Reads until the close frame and returns it.
pub async fn recv_close(ws: &mut Ws) -> CloseFrame {
    within("a close frame", async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => return frame,
                Some(Ok(Message::Close(None))) => panic!("close frame without a code"),
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await
}

pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.expect("client send");
}

/// Starts the real `wsgate` binary with `args`, every listener not named in `args` on
/// 127.0.0.1:0; returns it with its "wsgate is up" log line once it serves. Its stdout keeps
/// being read so the child never blocks on a full pipe.
pub async fn spawn_wsgate(args: &[&str]) -> (tokio::process::Child, String) {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut all: Vec<&str> = Vec::new();
    for flag in ["--ws-addr", "--worker-addr", "--api-addr", "--grpc-addr"] {
        if !args.contains(&flag) {
            all.extend([flag, "127.0.0.1:0"]);
        }
    }
    all.extend(args);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .args(&all)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("wsgate starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let up = within("the start-up line", async {
        loop {
            let line = lines
                .next_line()
                .await
                .expect("read")
                .expect("a start-up line");
            if line.contains("wsgate is up") {
                return line;
            }
        }
    })
    .await;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, up)
}

/// The value of `key=` in a log line.
pub fn log_field<'a>(line: &'a str, key: &str) -> &'a str {
    let start = line.find(key).unwrap_or_else(|| panic!("{key} in {line}")) + key.len();
    line[start..].split_whitespace().next().unwrap_or_default()
}

/// Loopback addresses with ports that were free a moment ago, reserved up front so gateways
/// can be given each other as peers before any of them is bound.
pub fn reserve_addrs(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("bound"))
        .collect()
}

/// A raw worker link for tests that speak the protocol by hand.
pub type RawLink = Framed<TcpStream, WorkerCodec>;

pub async fn raw_link(addr: SocketAddr) -> RawLink {
    let stream = TcpStream::connect(addr).await.expect("worker port accepts");
    Framed::new(stream, WorkerCodec::default())
}

pub async fn raw_register(addr: SocketAddr, token: &str) -> RawLink {
    let register = Register {
        name: "raw".into(),
        token: token.into(),
        protocol_version: 1,
        ..Default::default()
    };
    raw_register_with(addr, register).await.0
}

/// A raw link registered with `register`, and the gateway's `RegisterOk`.
pub async fn raw_register_with(
    addr: SocketAddr,
    register: Register,
) -> (RawLink, wsgate_proto::v1::RegisterOk) {
    let mut link = raw_link(addr).await;
    link.send(Envelope {
        request_id: 1,
        body: Some(Body::Register(register)),
        ..Default::default()
    })
    .await
    .expect("send Register");
    match raw_next(&mut link).await {
        Some(Envelope {
            request_id: 1,
            body: Some(Body::RegisterOk(ok)),
            ..
        }) => (link, ok),
        other => panic!("expected RegisterOk, got {other:?}"),
    }
}

/// The next frame on a raw link; None at EOF.
pub async fn raw_next(link: &mut RawLink) -> Option<Envelope> {
    within("a worker frame", link.next())
        .await
        .map(|r| r.expect("a valid frame"))
}

/// The next frame on a raw link that is not a Ping; None at EOF.
pub async fn raw_next_not_ping(link: &mut RawLink) -> Option<Envelope> {
    loop {
        match raw_next(link).await {
            Some(Envelope {
                body: Some(Body::Ping(_)),
                ..
            }) => continue,
            other => return other,
        }
    }
}

/// A raw link registered under `name` for no events: it only sends commands.
pub async fn raw_commander(
    addr: SocketAddr,
    name: &str,
) -> (RawLink, wsgate_proto::v1::RegisterOk) {
    let register = Register {
        name: name.into(),
        protocol_version: 1,
        events: vec![wsgate_proto::v1::EventKind::None as i32],
        ..Default::default()
    };
    raw_register_with(addr, register).await
}

/// Sends `env` on a raw link and returns the frame that answers it (same request id, pings
/// skipped).
pub async fn raw_ask(link: &mut RawLink, env: Envelope) -> Envelope {
    let request_id = env.request_id;
    link.send(env).await.expect("send a frame");
    match raw_next_not_ping(link).await {
        Some(answer) if answer.request_id == request_id => answer,
        other => panic!("expected the answer to request {request_id}, got {other:?}"),
    }
}

/// The same, for a command or query: its `Result`.
pub async fn raw_result(link: &mut RawLink, env: Envelope) -> wsgate_proto::v1::Result {
    match raw_ask(link, env).await.body {
        Some(Body::Result(result)) => result,
        other => panic!("expected a Result, got {other:?}"),
    }
}

/// Reads frames (skipping pings) until an Error frame, then expects EOF.
pub async fn expect_error_then_eof(link: &mut RawLink) -> wsgate_proto::v1::Error {
    let err = loop {
        match raw_next(link).await {
            Some(Envelope {
                body: Some(Body::Error(e)),
                ..
            }) => break e,
            Some(Envelope {
                body: Some(Body::Ping(_)),
                ..
            }) => continue,
            other => panic!("expected an Error frame, got {other:?}"),
        }
    };
    loop {
        match raw_next(link).await {
            None => return err,
            Some(Envelope {
                body: Some(Body::Ping(_)),
                ..
            }) => continue,
            other => panic!("expected the link to close, got {other:?}"),
        }
    }
}

/// Raw bytes for hand-made frames.
pub fn frame_bytes(len_prefix: u32, body: &[u8]) -> BytesMut {
    let mut b = BytesMut::new();
    b.put_u32(len_prefix);
    b.put_slice(body);
    b
}
