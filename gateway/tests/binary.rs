//! The `wsgate` binary itself: starts with flags, reports where it listens, drains on SIGTERM
//! and exits 0, and refuses an unsafe configuration with a message and exit code 2.

mod common;

use common::*;
use tokio::process::Command;
use wsgate_business::{Client, ClosedBy};

#[tokio::test]
async fn sigterm_drains_clients_and_exits_cleanly() {
    let (mut child, up) = spawn_wsgate(&["--node-id", "bin"]).await;
    assert!(
        !up.contains('\u{1b}'),
        "no colour codes when not on a terminal: {up}"
    );
    let url = log_field(&up, "clients=").to_owned();
    let worker = log_field(&up, "worker=").to_owned();

    let (_client, events) = Client::builder(worker)
        .name("bin-test")
        .connect()
        .await
        .expect("business");
    let mut events = EventsExt(events);
    let mut ws = connect(&url).await;
    let id = events.open().await.conn_id;
    assert!(id.starts_with("bin-"));

    let pid = child.id().expect("pid").to_string();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(status.success());

    assert_eq!(u16::from(recv_close(&mut ws).await.code), 1001);
    let close = events.close().await;
    assert_eq!((close.conn_id.as_str(), close.code), (id.as_str(), 1001));
    assert_eq!(close.closed_by, ClosedBy::Gateway as i32);
    let exit = within("wsgate to exit", child.wait()).await.expect("wait");
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn an_open_worker_port_without_a_token_is_refused_at_start() {
    let out = within(
        "wsgate to exit",
        Command::new(env!("CARGO_BIN_EXE_wsgate"))
            .args([
                "--api-addr",
                "127.0.0.1:0",
                "--grpc-addr",
                "127.0.0.1:0",
                "--ws-addr",
                "127.0.0.1:0",
                "--worker-addr",
                "0.0.0.0:0",
            ])
            .output(),
    )
    .await
    .expect("wsgate runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--worker-token"), "{stderr}");
}

#[tokio::test]
async fn bad_flag_values_name_the_flag() {
    let out = within(
        "wsgate to exit",
        Command::new(env!("CARGO_BIN_EXE_wsgate"))
            .args(["--client-idle-timeout", "soon"])
            .output(),
    )
    .await
    .expect("wsgate runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--client-idle-timeout") && stderr.contains("10s"),
        "{stderr}"
    );
}
