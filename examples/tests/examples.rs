//! The example binaries, run as real processes against a real gateway and real clients.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use wsgate::{Config, Gateway, Stats};

const WAIT: Duration = Duration::from_secs(15);

/// Every gateway of a test gets its own node id, as in a real cluster.
static NEXT_NODE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Running {
    url: String,
    worker: String,
    stats: Arc<Stats>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

async fn gateway() -> Running {
    gateway_with(|_| {}).await
}

async fn gateway_with(tweak: impl FnOnce(&mut Config)) -> Running {
    let mut config = Config {
        ws_addr: "127.0.0.1:0".parse().expect("addr"),
        worker_addr: "127.0.0.1:0".parse().expect("addr"),
        api_addr: "127.0.0.1:0".parse().expect("addr"),
        grpc_addr: "127.0.0.1:0".parse().expect("addr"),
        worker_token: Some("example-secret".into()),
        node_id: format!(
            "ex{}",
            NEXT_NODE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ),
        ..Config::default()
    };
    tweak(&mut config);
    let gw = Gateway::bind(config).await.expect("gateway binds");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    Running {
        url: format!("ws://{}/ws", gw.ws_addr()),
        worker: gw.worker_addr().to_string(),
        stats: gw.stats(),
        task: tokio::spawn(gw.run(async move {
            let _ = stopped.await;
        })),
        stop,
    }
}

/// Starts an example binary and waits until the gateway has its link.
async fn example(bin: &str, gw: &Running) -> Child {
    example_on(bin, &[gw]).await
}

/// Starts an example binary linked to every gateway given.
async fn example_on(bin: &str, gws: &[&Running]) -> Child {
    let addrs: Vec<&str> = gws.iter().map(|g| g.worker.as_str()).collect();
    let child = Command::new(bin)
        .args(["--gateway", &addrs.join(","), "--token", "example-secret"])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("example binary starts");
    tokio::time::timeout(WAIT, async {
        while gws
            .iter()
            .any(|gw| Stats::get(&gw.stats.links_current) == 0)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the example registers");
    child
}

async fn client(gw: &Running) -> Ws {
    tokio_tungstenite::connect_async(&gw.url)
        .await
        .expect("client connects")
        .0
}

async fn recv(ws: &mut Ws) -> Message {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a message in time")
            .expect("stream open")
            .expect("valid frame");
        if !matches!(msg, Message::Ping(_) | Message::Pong(_)) {
            return msg;
        }
    }
}

async fn recv_text(ws: &mut Ws) -> String {
    match recv(ws).await {
        Message::Text(t) => t.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

async fn stop(gw: Running) {
    let _ = gw.stop.send(());
    tokio::time::timeout(WAIT, gw.task)
        .await
        .expect("gateway stops")
        .expect("gateway task");
}

#[tokio::test]
async fn echo_sends_every_message_back_to_its_sender() {
    let gw = gateway().await;
    let _echo = example(env!("CARGO_BIN_EXE_echo"), &gw).await;
    let mut a = client(&gw).await;
    let mut b = client(&gw).await;
    for i in 0..10 {
        a.send(Message::text(format!("a{i}"))).await.expect("send");
    }
    b.send(Message::binary(vec![1u8, 2, 3]))
        .await
        .expect("send");
    for i in 0..10 {
        assert_eq!(recv_text(&mut a).await, format!("a{i}"));
    }
    assert_eq!(recv(&mut b).await, Message::binary(vec![1u8, 2, 3]));
    stop(gw).await;
}

/// The next chat line that is not a join announcement (who sees whose join depends on the
/// order the gateway registered the clients in).
async fn recv_chat(ws: &mut Ws) -> String {
    loop {
        let line = recv_text(ws).await;
        if !(line.starts_with("* ") && line.ends_with(" joined")) {
            return line;
        }
    }
}

#[tokio::test]
async fn chat_relays_to_everyone_else_with_the_sender_id() {
    let gw = gateway().await;
    let _chat = example(env!("CARGO_BIN_EXE_chat"), &gw).await;
    let mut alice = client(&gw).await;
    let mut bob = client(&gw).await;

    bob.send(Message::text("hi all")).await.expect("send");
    let line = recv_chat(&mut alice).await;
    let bob_id = line
        .strip_suffix(": hi all")
        .expect("prefixed with the sender's id")
        .to_owned();
    assert!(bob_id.starts_with("ex"), "{bob_id}");

    alice.send(Message::text("hello bob")).await.expect("send");
    let line = recv_chat(&mut bob).await;
    let alice_id = line
        .strip_suffix(": hello bob")
        .expect("prefixed with the sender's id")
        .to_owned();
    assert!(
        alice_id.starts_with("ex") && alice_id != bob_id,
        "{alice_id}"
    );

    // Senders never get their own lines back: each side's next line is the other's.
    bob.send(Message::text("bye")).await.expect("send");
    assert_eq!(recv_chat(&mut alice).await, format!("{bob_id}: bye"));
    alice.close(None).await.expect("close");
    assert_eq!(recv_chat(&mut bob).await, format!("* {alice_id} left"));
    stop(gw).await;
}

#[tokio::test]
async fn one_chat_process_relays_across_two_gateways() {
    let (a, b) = (gateway().await, gateway().await);
    let _chat = example_on(env!("CARGO_BIN_EXE_chat"), &[&a, &b]).await;
    let mut on_a = client(&a).await;
    let mut on_b = client(&b).await;
    on_a.send(Message::text("across")).await.expect("send");
    let line = recv_chat(&mut on_b).await;
    assert!(line.ends_with(": across"), "{line}");
    stop(a).await;
    stop(b).await;
}

/// What happens to one of the two echo processes mid-stream.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// SIGKILL: the process and its socket are gone at once.
    Kill,
    /// SIGSTOP: the process hangs behind a socket that still takes bytes.
    Stop,
}

const CLIENTS: usize = 16;
const MESSAGES: usize = 150;

/// Two echo processes with `--acks`, clients sending numbered messages; one process is killed
/// or stopped once a third of the messages are in. Every message is answered, and the first
/// answer to each comes in the order the client sent them (a redelivered message may be
/// answered twice). Without `--acks` both fail: what was written to the failing process is lost.
async fn one_process_fails_mid_stream(fault: Fault) {
    let gw = gateway_with(|c| {
        c.worker_ack_timeout = Duration::from_millis(800);
        c.worker_heartbeat_interval = Duration::from_millis(100);
    })
    .await;
    let spawn_echo = || {
        Command::new(env!("CARGO_BIN_EXE_echo"))
            .args([
                "--gateway",
                &gw.worker,
                "--token",
                "example-secret",
                "--acks",
            ])
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("echo starts")
    };
    let mut failing = spawn_echo();
    let _healthy = spawn_echo();
    tokio::time::timeout(WAIT, async {
        while Stats::get(&gw.stats.links_current) < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("both echo processes register");

    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let ws = client(&gw).await;
        tasks.push(tokio::spawn(async move {
            let (mut tx, mut rx) = ws.split();
            let send = async move {
                for n in 1..=MESSAGES {
                    tx.send(Message::text(format!("{c}:{n}")))
                        .await
                        .expect("client sends");
                    // A steady stream, so the fault lands in the middle of it.
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
                tx
            };
            let answers = async move {
                let mut seen = Vec::new();
                let mut distinct = std::collections::HashSet::new();
                let mut answers = 0usize;
                while distinct.len() < MESSAGES {
                    let msg = tokio::time::timeout(WAIT, rx.next())
                        .await
                        .expect("every message is answered in time")
                        .expect("stream open")
                        .expect("valid frame");
                    if let Message::Text(t) = msg {
                        let n: usize = t
                            .split(':')
                            .nth(1)
                            .and_then(|n| n.parse().ok())
                            .expect("an echo of a numbered message");
                        answers += 1;
                        if distinct.insert(n) {
                            seen.push(n);
                        }
                    }
                }
                (seen, answers - MESSAGES)
            };
            let (_tx, seen) = tokio::join!(send, answers);
            seen
        }));
    }
    tokio::time::timeout(WAIT, async {
        while gw.stats.messages_in.get() < (CLIENTS * MESSAGES / 3) as u64 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("a third of the messages arrive");
    match fault {
        Fault::Kill => failing.start_kill().expect("SIGKILL the echo process"),
        Fault::Stop => {
            let pid = failing.id().expect("the echo process runs").to_string();
            let stopped = std::process::Command::new("kill")
                .args(["-STOP", &pid])
                .status()
                .expect("kill -STOP runs");
            assert!(stopped.success(), "SIGSTOP the echo process");
        }
    }
    let mut duplicates = 0;
    for task in tasks {
        let (seen, again) = task.await.expect("client task");
        let expected: Vec<usize> = (1..=MESSAGES).collect();
        assert_eq!(
            seen, expected,
            "each message answered, first answers in order"
        );
        duplicates += again;
    }
    // A message answered twice was redelivered: the gateway marked it so, and the second echo
    // process was given it as such.
    let redelivered = Stats::get(&gw.stats.events_redelivered) as usize;
    assert!(
        duplicates <= redelivered,
        "{duplicates} duplicate answers, only {redelivered} events redelivered"
    );
    if let Fault::Stop = fault {
        assert_eq!(Stats::get(&gw.stats.links_ack_timeouts), 1);
    }
    let _ = failing.kill().await;
    stop(gw).await;
}

#[tokio::test]
async fn echo_with_acks_answers_every_message_when_one_process_is_killed() {
    one_process_fails_mid_stream(Fault::Kill).await;
}

#[tokio::test]
async fn echo_with_acks_answers_every_message_when_one_process_hangs() {
    one_process_fails_mid_stream(Fault::Stop).await;
}
