//! The protocol is language-neutral: `examples/python/echo.py`, written from
//! `docs/protocol.md` alone with no protobuf library, registers, keeps the heartbeat and
//! echoes through a real gateway.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

/// The script, started against `gw` with `args`, once it says it registered.
async fn registered_script(gw: &TestGateway, args: &[&str]) -> tokio::process::Child {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/python/echo.py");
    let mut child = Command::new("python3")
        .arg(script)
        .args(["--gateway", &gw.worker_addr.to_string()])
        .args(args)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs (CI installs it)");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let line = within("the script to register", lines.next_line())
        .await
        .expect("the script's stdout is readable")
        .unwrap_or_default();
    assert_eq!(line, "registered test-gw");
    child
}

#[tokio::test]
async fn python_echo_business_works_through_the_gateway() {
    let gw = TestGateway::start_with(|c| {
        c.worker_token = Some("py-secret".into());
        c.worker_heartbeat_interval = Duration::from_millis(100);
        c.worker_heartbeat_timeout = Duration::from_millis(500);
    })
    .await;
    let mut child = registered_script(&gw, &["--token", "py-secret"]).await;

    let mut ws = gw.client().await;
    send_text(&mut ws, "héllo from rust").await;
    assert_eq!(recv_text(&mut ws).await, "héllo from rust");
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    match within("binary echo", ws.next()).await {
        Some(Ok(Message::Binary(b))) => assert_eq!(&b[..], &[0u8, 1, 2, 255]),
        other => panic!("expected a binary echo, got {other:?}"),
    }
    // Past several heartbeat timeouts the script's pings keep its link alive.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        gw.stat(|s| &s.links_current),
        1,
        "the Python link kept its heartbeat"
    );
    send_text(&mut ws, "still there").await;
    assert_eq!(recv_text(&mut ws).await, "still there");

    child.kill().await.expect("kill the script");
    wait_until("the link to go", || gw.stat(|s| &s.links_current) == 0).await;
    gw.stop().await;
}

#[tokio::test]
async fn python_echo_with_a_wrong_token_exits_with_the_reason() {
    let gw = TestGateway::start_with(|c| c.worker_token = Some("right".into())).await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/python/echo.py");
    let out = within(
        "the script to exit",
        Command::new("python3")
            .arg(script)
            .args(["--gateway", &gw.worker_addr.to_string(), "--token", "wrong"])
            .output(),
    )
    .await
    .expect("python3 runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("UNAUTHENTICATED") || stderr.contains("token"),
        "{stderr}"
    );
    gw.stop().await;
}

/// With `--acks` the script acknowledges what it echoed: the gateway ends up holding nothing
/// unacknowledged, and keeps the link (no acknowledgement it could not take).
#[tokio::test]
async fn python_echo_with_acks_acknowledges_every_message_it_echoed() {
    let gw = TestGateway::start().await;
    let mut child = registered_script(&gw, &["--acks"]).await;
    let mut ws = gw.client().await;
    for i in 0..100 {
        send_text(&mut ws, &format!("m{i}")).await;
    }
    for i in 0..100 {
        assert_eq!(recv_text(&mut ws).await, format!("m{i}"));
    }
    wait_until("every echoed message acknowledged", || {
        gw.stat(|s| &s.events_unacked) == 0 && gw.stat(|s| &s.acks_received) > 0
    })
    .await;
    assert_eq!(gw.stat(|s| &s.links_current), 1, "the link stays up");
    child.kill().await.expect("kill the script");
    gw.stop().await;
}
