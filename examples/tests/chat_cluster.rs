//! The chat-across-processes example (`examples/chat-cluster/`), end to end: two gateways made
//! from the example's own config files, the `chat-rooms` business process linked to both, the
//! example's balancer (`balancer.mjs`, node) in front, and real WebSocket clients that come in
//! through the balancer, as a browser does. Messages cross gateways; one-to-one stays private;
//! the HTTP API of one gateway reaches a user on the other.
//!
//! Needs node (the balancer): in CI a missing node fails the test (`.ci/run` installs it),
//! elsewhere it is skipped with the reason.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use wsgate::{Config, Gateway, Stats};

/// The longest any one wait may take.
const WAIT: Duration = Duration::from_secs(15);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("chat-cluster")
}

async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// Whether node (and for `browser`, Chromium and `npm ci` in examples/) is here; in CI a
/// missing part fails the test, elsewhere the test is skipped saying what is missing.
fn node_here(browser: bool) -> bool {
    let chromium = std::env::var("CHROMIUM").unwrap_or("/usr/bin/chromium".into());
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let missing = if !node {
        Some("node is missing: apt-get install -y nodejs npm".to_owned())
    } else if browser && !std::path::Path::new(&chromium).exists() {
        Some(format!(
            "{chromium} is missing: apt-get install -y chromium"
        ))
    } else if browser
        && !PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("node_modules/playwright-core")
            .exists()
    {
        Some("playwright-core is not installed: (cd examples && npm ci)".to_owned())
    } else {
        None
    };
    let Some(missing) = missing else {
        return true;
    };
    if std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false") {
        panic!("the chat-cluster test cannot run in CI: {missing} (.ci/run installs it)");
    }
    eprintln!("skipping the chat-cluster test: {missing}");
    false
}

/// Loopback addresses whose ports were free a moment ago.
fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("its address"))
        .collect()
}

struct Gw {
    stats: Arc<Stats>,
    ws: SocketAddr,
    api: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Gateway `i` (1 or 2) from `gw<i>.toml`, on the given addresses instead of the file's.
async fn gateway(i: usize, worker: SocketAddr, peers: &str) -> Gw {
    let config_file = example_dir().join(format!("gw{i}.toml"));
    let addrs = free_addrs(2);
    let (ws, api) = (addrs[0].to_string(), addrs[1].to_string());
    let worker = worker.to_string();
    let config = Config::load([
        "wsgate",
        "--config",
        config_file.to_str().expect("a UTF-8 path"),
        "--ws-addr",
        &ws,
        "--worker-addr",
        &worker,
        "--api-addr",
        &api,
        "--grpc-addr",
        "127.0.0.1:0",
        "--peers",
        peers,
    ])
    .expect("the example's config file is valid");
    assert_eq!(
        config.node_id,
        format!("gw{i}"),
        "the node id from the file"
    );
    let gw = Gateway::bind(config).await.expect("the gateway binds");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = Gw {
        stats: gw.stats(),
        ws: gw.ws_addr(),
        api: gw.api_addr(),
        _stop: stop,
    };
    tokio::spawn(gw.run(async move {
        let _ = stopped.await;
    }));
    running
}

/// The worker token both config files share (the business process must send it).
fn worker_token() -> String {
    let text = std::fs::read_to_string(example_dir().join("gw1.toml")).expect("gw1.toml");
    let line = text
        .lines()
        .find(|l| l.starts_with("worker_token"))
        .expect("a worker_token line");
    line.split('"').nth(1).expect("a quoted token").to_owned()
}

/// Starts `node balancer.mjs` on a free port in front of both gateways; returns it and its
/// address, read from its first line.
async fn balancer(gws: &[&Gw]) -> (Child, String) {
    let list: Vec<String> = gws.iter().map(|g| g.ws.to_string()).collect();
    let mut child = Command::new("node")
        .arg(example_dir().join("balancer.mjs"))
        .args(["--listen", "127.0.0.1:0", "--gateways", &list.join(",")])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = within("the balancer's first line", lines.next_line())
        .await
        .expect("read")
        .expect("the balancer says where it listens");
    let at = first
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    // Keep reading, so the balancer never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, at)
}

async fn recv(ws: &mut Ws) -> Value {
    loop {
        let frame = within("a message", ws.next())
            .await
            .expect("the connection stays open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            return serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        }
    }
}

async fn send(ws: &mut Ws, request: Value) {
    ws.send(Message::text(request.to_string()))
        .await
        .expect("sent");
}

/// A client through the balancer, logged in as `user`; returns it and its gateway.
async fn login(at: &str, user: &str) -> (Ws, String) {
    let (mut ws, _) = within(
        "a connection through the balancer",
        tokio_tungstenite::connect_async(format!("ws://{at}/ws")),
    )
    .await
    .expect("the balancer passes the upgrade on");
    send(&mut ws, json!({"type": "login", "user": user})).await;
    let welcome = recv(&mut ws).await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    assert_eq!(welcome["user"], user);
    let gateway = welcome["gateway"].as_str().expect("a gateway").to_owned();
    (ws, gateway)
}

/// Posts JSON to a gateway's HTTP API; returns the status line and the body.
async fn post(api: SocketAddr, path: &str, body: Value) -> (String, String) {
    let body = body.to_string();
    let mut stream = tokio::net::TcpStream::connect(api).await.expect("the API");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut answer = String::new();
    within("the API's answer", stream.read_to_string(&mut answer))
        .await
        .expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    (status, body.to_owned())
}

/// The next message `ws` gets is `marker`, sent to it through the API after everything the
/// test sent before: so nothing else (another user's whisper) came in between.
async fn nothing_else_for(ws: &mut Ws, api: SocketAddr, user: &str) {
    let marker = format!("marker for {user}");
    let (status, body) = post(
        api,
        "/api/v1/users/send",
        json!({"user_ids": [user], "text": json!({"type": "marker", "text": marker}).to_string()}),
    )
    .await;
    assert!(status.contains(" 200 "), "{status} {body}");
    let got = recv(ws).await;
    assert_eq!(
        got["text"],
        marker.as_str(),
        "{user} got something else first"
    );
}

/// The whole example running: both gateways, chat-rooms linked to both, the balancer in front.
struct Running {
    gw1: Gw,
    gw2: Gw,
    /// Where the balancer listens, `127.0.0.1:PORT`.
    at: String,
    _processes: [Child; 2],
}

async fn running() -> Running {
    let workers = free_addrs(2);
    let peers = format!("{},{}", workers[0], workers[1]);
    let gw1 = gateway(1, workers[0], &peers).await;
    let gw2 = gateway(2, workers[1], &peers).await;
    let business = Command::new(env!("CARGO_BIN_EXE_chat-rooms"))
        .args(["--gateway", &peers, "--token", &worker_token()])
        // Its warnings and errors only: the test's output stays readable.
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chat-rooms starts");
    within("chat-rooms linked to both gateways", async {
        while [&gw1, &gw2]
            .iter()
            .any(|g| Stats::get(&g.stats.links_current) == 0)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let (balancer, at) = balancer(&[&gw1, &gw2]).await;
    Running {
        gw1,
        gw2,
        at,
        _processes: [business, balancer],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_chat_across_two_gateways_one_to_one_and_in_rooms() {
    if !node_here(false) {
        return;
    }
    let Running { gw1, gw2, at, .. } = &running().await;
    let at = at.as_str();

    // Round robin: consecutive clients land on different gateways.
    let (mut alice, alice_gw) = login(at, "alice").await;
    let (mut bob, bob_gw) = login(at, "bob").await;
    let (mut carol, carol_gw) = login(at, "carol").await;
    let (mut dave, dave_gw) = login(at, "dave").await;
    assert_ne!(alice_gw, bob_gw, "the balancer spreads clients");
    assert_eq!(alice_gw, carol_gw);
    assert_eq!(bob_gw, dave_gw);

    // One-to-one, across gateways: bob gets it, the sender a receipt, nobody else anything.
    send(
        &mut alice,
        json!({"type": "whisper", "to": "bob", "text": "psst, bob"}),
    )
    .await;
    let whisper = recv(&mut bob).await;
    assert_eq!(
        whisper,
        json!({"type": "whisper", "from": "alice", "to": "bob", "text": "psst, bob"})
    );
    let receipt = recv(&mut alice).await;
    assert_eq!(
        receipt,
        json!({"type": "sent", "to": "bob", "connections": 1})
    );
    nothing_else_for(&mut carol, gw2.api, "carol").await;
    nothing_else_for(&mut dave, gw1.api, "dave").await;

    // A second connection of bob, wherever it lands, gets his whispers too.
    let (mut bob_phone, _) = login(at, "bob").await;
    send(
        &mut dave,
        json!({"type": "whisper", "to": "bob", "text": "both?"}),
    )
    .await;
    assert_eq!(recv(&mut bob).await["text"], "both?");
    assert_eq!(recv(&mut bob_phone).await["text"], "both?");
    assert_eq!(recv(&mut dave).await["connections"], 2);

    // Rooms across gateways: alice (gw of carol), bob and dave join "lobby", carol "kitchen".
    for (ws, room) in [
        (&mut alice, "lobby"),
        (&mut bob, "lobby"),
        (&mut dave, "lobby"),
        (&mut carol, "kitchen"),
    ] {
        send(ws, json!({"type": "join", "room": room})).await;
        // Wait for one's own "joined": after it, a `say` is accepted.
        loop {
            let m = recv(ws).await;
            if m["type"] == "joined" && m["room"] == room {
                break;
            }
        }
    }
    send(
        &mut bob,
        json!({"type": "say", "room": "lobby", "text": "hi lobby"}),
    )
    .await;
    let said = json!({"type": "said", "room": "lobby", "from": "bob", "text": "hi lobby"});
    for ws in [&mut alice, &mut bob, &mut dave] {
        loop {
            let m = recv(ws).await;
            if m["type"] == "said" {
                assert_eq!(m, said);
                break;
            }
            assert_eq!(m["type"], "joined", "only later joins before it: {m}");
        }
    }
    nothing_else_for(&mut carol, gw1.api, "carol").await;

    // Saying something in a room one has not joined is refused, with what to do.
    send(
        &mut carol,
        json!({"type": "say", "room": "lobby", "text": "let me in"}),
    )
    .await;
    let refused = recv(&mut carol).await;
    assert_eq!(refused["type"], "error");
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("join room \"lobby\"")),
        "{refused}"
    );
    // So is a whisper to nobody, and a frame that is not a request.
    send(
        &mut carol,
        json!({"type": "whisper", "to": "zed", "text": "hello?"}),
    )
    .await;
    assert_eq!(
        recv(&mut carol).await,
        json!({"type": "error", "error": "zed is not online"})
    );
    carol.send(Message::text("hello")).await.expect("sent");
    let refused = recv(&mut carol).await;
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("send JSON such as")),
        "{refused}"
    );

    // The HTTP endpoint that forwards to a user: either gateway's API reaches dave on gw2 (or
    // gw1), and only him.
    let other_api = if dave_gw == "gw1" { gw2.api } else { gw1.api };
    let (status, body) = post(
        other_api,
        "/api/v1/users/send",
        json!({"user_ids": ["dave"], "text": "{\"type\":\"notice\",\"text\":\"your order shipped\"}"}),
    )
    .await;
    assert!(status.contains(" 200 "), "{status} {body}");
    assert!(body.contains("\"delivered\":1"), "{body}");
    assert_eq!(
        recv(&mut dave).await,
        json!({"type": "notice", "text": "your order shipped"})
    );
    nothing_else_for(&mut alice, gw1.api, "alice").await;

    // Leaving is announced to the room, across gateways.
    drop(bob_phone);
    dave.close(None).await.expect("closed");
    for ws in [&mut alice, &mut bob] {
        let m = recv(ws).await;
        assert_eq!(m, json!({"type": "left", "room": "lobby", "user": "dave"}));
    }
}

/// The page itself, in Chromium: two users on different gateways chat in a room and one to one,
/// a third sees none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_page_works_across_gateways_in_chromium() {
    if !node_here(true) {
        return;
    }
    let running = running().await;
    let url = format!("http://{}/", running.at);
    let mut args = vec!["chat-cluster/test/browser.test.mjs", "--url", &url];
    // CHAT_SHOTS=DIR keeps the screenshot (the README's is made this way).
    let shots = std::env::var("CHAT_SHOTS").ok();
    if let Some(dir) = &shots {
        args.extend(["--shots", dir]);
    }
    let run = Command::new("node")
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the page test finishes in 90 s")
        .expect("node starts");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    println!("{stdout}");
    assert!(out.status.success(), "{}: {stdout}\n{stderr}", out.status);
}
