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

/// CPU time a process has used, in clock ticks (utime + stime from /proc).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the command name, which ends with the last ')'.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

#[tokio::test]
async fn at_the_open_file_limit_clients_get_503_and_the_gateway_neither_spins_nor_floods_the_log() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = Command::new("sh")
        .args([
            "-c",
            "ulimit -n 200 && exec \"$0\" --ws-addr 127.0.0.1:0 --worker-addr 127.0.0.1:0 \
             --api-addr 127.0.0.1:0 --grpc-addr 127.0.0.1:0",
            env!("CARGO_BIN_EXE_wsgate"),
        ])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("wsgate starts");
    let pid = child.id().expect("pid");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let mut wait_for = async |needle: &str, seen: &mut Vec<String>| -> String {
        within(needle, async {
            loop {
                let line = rx.recv().await.expect("wsgate still logging");
                seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
        })
        .await
    };
    let limit = wait_for("open-file limit", &mut seen).await;
    assert_eq!(log_field(&limit, "open_files="), "200", "{limit}");
    assert_eq!(log_field(&limit, "connection_ceiling="), "100", "{limit}");
    assert_eq!(log_field(&limit, "max_connections="), "100", "{limit}");
    let up = wait_for("wsgate is up", &mut seen).await;
    let url = log_field(&up, "clients=").to_owned();

    let ws_addr = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .expect("ws address")
        .to_owned();

    // Clients past the connection ceiling are refused with 503, and the gateway says so once.
    let mut admitted = Vec::new();
    for _ in 0..100 {
        admitted.push(connect(&url).await);
    }
    for _ in 0..3 {
        assert_eq!(refusal(&url).await.status(), 503);
    }
    wait_for("holds its maximum number of clients", &mut seen).await;
    drop(admitted);

    // Sockets that never finish a handshake hold descriptors the limit does not count: the
    // process runs out, the accept loop backs off instead of spinning, and says so once.
    let mut silent = Vec::new();
    for _ in 0..250 {
        silent.push(tokio::spawn(tokio::net::TcpStream::connect(
            ws_addr.clone(),
        )));
    }
    let warning = wait_for("out of file descriptors", &mut seen).await;
    assert!(warning.contains("WARN"), "{warning}");
    let before = cpu_ticks(pid);
    // Let the saturated gateway run for a second: spinning on EMFILE would burn it all.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let used = cpu_ticks(pid) - before;
    assert!(
        used < 30,
        "the accept loop backs off, it used {used} ticks in 1 s"
    );
    // They leave: the waiting connections are accepted, and a client gets in again.
    for socket in silent {
        drop(socket.await.expect("task"));
    }
    wait_for("works again", &mut seen).await;
    // Seats come back as the admitted clients' tasks finish.
    let mut ws = connect_when_a_seat_is_free(&url).await;
    ws.close(None).await.expect("close");
    for needle in [
        "out of file descriptors",
        "holds its maximum number of clients",
    ] {
        let warnings = seen.iter().filter(|l| l.contains(needle)).count();
        assert_eq!(warnings, 1, "{needle:?} logged once: {seen:#?}");
    }
}

#[tokio::test]
async fn sigint_at_once_after_start_drains_and_exits_0() {
    let (mut child, _up) = spawn_wsgate(&["--node-id", "int"]).await;
    let pid = child.id().expect("pid").to_string();
    let status = Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .expect("kill runs");
    assert!(status.success());
    let exit = within("wsgate to exit", child.wait()).await.expect("wait");
    assert!(exit.success(), "drained and exited 0, not killed: {exit:?}");
}
