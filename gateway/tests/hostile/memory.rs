//! Memory under floods, measured on the real binary: its peak resident set (`VmHWM`) while
//! clients that never read flood 1 MB messages at an echo business process.
//!
//! The bound is what the limits promise: each such client holds at most its input buffer
//! (`--max-message-bytes`), one message in its send queue (`--send-queue-bytes` or one larger
//! message) and what the kernel's socket buffers take, before it is closed with 4001; the
//! worker link's queue holds at most `--link-queue-bytes`. Before the byte bounds, two such
//! clients took the gateway from 10 MB to 1.5 GB.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wsgate_business::{Client, Event};

use super::common::*;

/// Peak and current resident memory of a process, in bytes.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// A client that upgrades, then writes `count` binary messages of `size` bytes and never
/// reads; it stops when the gateway closes the connection, or is dropped by the test.
async fn flooder(addr: &str, count: usize, size: usize) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .expect("request");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.expect("the 101");
        head.push(b[0]);
    }
    // A masked frame whose mask key is zero: the payload goes as it is.
    let mut frame = vec![0x82, 0x80 | 127];
    frame.extend_from_slice(&(size as u64).to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.resize(frame.len() + size, b'x');
    for _ in 0..count {
        if s.write_all(&frame).await.is_err() {
            return;
        }
    }
    // Still connected and still not reading, until the test is done with it: a client that
    // left on its own would end with 1006 before the gateway could close it as a slow
    // consumer, which happens when the gateway is slower than the flood (a busy machine).
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_flooding_1_mb_messages_without_reading_stay_within_bounds() {
    const CLIENTS: usize = 4;
    // Measured: a peak of about 100 MB (from 20 MB) on the 2-core machine, debug build.
    const BOUND: u64 = 256 * 1024 * 1024;
    let (child, up) = spawn_wsgate(&["--node-id", "flood"]).await;
    let pid = child.id().expect("a pid");
    let ws = log_field(&up, "clients=")
        .trim_start_matches("ws://")
        .trim_end_matches("/ws")
        .to_owned();
    let worker = log_field(&up, "worker=").to_owned();
    let (echo, mut events) = Client::builder(worker)
        .name("echo")
        .connect()
        .await
        .expect("echo");
    let (before, _) = memory(pid);
    let floods: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(flooder_at(ws.clone())))
        .collect();
    let mut closed = Vec::new();
    // Every message a client sent before it was closed is delivered first (a thousand or so
    // of 1 MB each): longer than one ordinary wait.
    let all_closed = tokio::time::timeout(std::time::Duration::from_secs(90), async {
        while closed.len() < CLIENTS {
            match events.recv().await.expect("events") {
                Event::Message(m) => {
                    if let Some(p) = m.payload {
                        let _ = echo.single_cast(m.conn_id, p).await;
                    }
                }
                Event::Close(c) => closed.push(c.code),
                _ => {}
            }
        }
    })
    .await;
    assert!(
        all_closed.is_ok(),
        "not every flooding client was closed: {closed:?}"
    );
    assert!(
        closed.iter().all(|c| *c == 4001),
        "closed as slow consumers: {closed:?}"
    );
    for f in floods {
        f.abort();
        let _ = f.await;
    }
    let (peak, now) = memory(pid);
    assert!(
        peak < BOUND,
        "{CLIENTS} flooding clients took the gateway from {} MB to a peak of {} MB (bound {} MB)",
        before >> 20,
        peak >> 20,
        BOUND >> 20
    );
    assert!(now < BOUND, "{} MB resident after they left", now >> 20);
    eprintln!(
        "flood: before {} MB, peak {} MB, after {} MB",
        before >> 20,
        peak >> 20,
        now >> 20
    );
    drop(child);
}

async fn flooder_at(addr: String) {
    flooder(&addr, 1100, 1_000_000).await
}
