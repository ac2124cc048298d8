//! Scenario 5, churn: workers connect, complete the handshake, close cleanly and start over;
//! handshakes per second and failures.
//!
//! Each cycle: TCP connect from the next source address, upgrade, a masked close frame, then
//! wait for the server's close frame and its end of the TCP connection (so the server, which
//! closes first, keeps the TIME_WAIT and the bench's ports are not used up). wsgate runs
//! without a business process, as in idle.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cli::Scenario;
use crate::error::BenchError;
use crate::frame;
use crate::handshake::{self, Conn};
use crate::progress::si;
use crate::results::{ChurnRow, Results};
use crate::target::TargetKind;

use super::{Ctx, failed};

/// Longest a handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the server's close frame and end of stream.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

pub async fn run(ctx: &Ctx, results: &mut Results) {
    ctx.progress.say(format!(
        "== churn: {} workers connecting and closing in a loop",
        ctx.plan.churn_concurrency
    ));
    for &kind in &ctx.targets {
        match one(ctx, results, kind).await {
            Ok(row) => results.churn.push(row),
            Err(e) => failed(ctx, results, Scenario::Churn, kind, &e),
        }
    }
}

/// What the workers share.
#[derive(Default)]
struct Shared {
    handshakes: AtomicU64,
    failures: AtomicU64,
    next_source: AtomicUsize,
    stop: AtomicBool,
    first_error: Mutex<Option<String>>,
}

impl Shared {
    fn fail(&self, error: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert(error);
    }
}

async fn one(ctx: &Ctx, results: &mut Results, kind: TargetKind) -> Result<ChurnRow, BenchError> {
    let workers = ctx.plan.churn_concurrency;
    ctx.check_clients("churn", workers)?;
    let target = ctx.start(kind).await?;
    let shared = Arc::new(Shared::default());
    let path = target.client_path("");
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (shared, path, server) = (shared.clone(), path.clone(), target.ws);
            let sources = ctx.plan.source_addrs;
            tokio::spawn(async move {
                while !shared.stop.load(Ordering::Relaxed) {
                    let from = handshake::source_addr(
                        shared.next_source.fetch_add(1, Ordering::Relaxed),
                        sources,
                    );
                    match cycle(from, server, &path).await {
                        Ok(()) => {
                            shared.handshakes.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(Cycle::Handshake(e)) => {
                            shared.fail(e);
                            // Do not spin on a target that refuses.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        Err(Cycle::Close(e)) => {
                            shared.handshakes.fetch_add(1, Ordering::Relaxed);
                            shared.fail(e);
                        }
                    }
                }
            })
        })
        .collect();
    let label = format!("churn {kind}");
    {
        let (shared, label) = (shared.clone(), label.clone());
        let begin = Instant::now();
        let mut last = (Instant::now(), 0u64);
        ctx.progress.show(move || {
            let now = Instant::now();
            let h = shared.handshakes.load(Ordering::Relaxed);
            let secs = now.duration_since(last.0).as_secs_f64().max(1e-3);
            let line = format!(
                "{label}: {:.0}s  handshakes {}/s, failures {}",
                begin.elapsed().as_secs_f64(),
                si((h - last.1) as f64 / secs),
                shared.failures.load(Ordering::Relaxed)
            );
            last = (now, h);
            line
        });
    }
    tokio::time::sleep(ctx.plan.warmup).await;
    let (h0, f0, t0) = (
        shared.handshakes.load(Ordering::Relaxed),
        shared.failures.load(Ordering::Relaxed),
        Instant::now(),
    );
    tokio::time::sleep(ctx.plan.duration).await;
    let (h1, f1, seconds) = (
        shared.handshakes.load(Ordering::Relaxed),
        shared.failures.load(Ordering::Relaxed),
        t0.elapsed().as_secs_f64(),
    );
    shared.stop.store(true, Ordering::Relaxed);
    for h in handles {
        // A worker finishes its cycle within the handshake and close timeouts.
        if tokio::time::timeout(HANDSHAKE_TIMEOUT + CLOSE_TIMEOUT, h)
            .await
            .is_err()
        {
            break;
        }
    }
    ctx.progress.clear();
    ctx.stop(target, results).await;
    let first_error = shared
        .first_error
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if h1 == h0 {
        return Err(BenchError::Target {
            target: kind.to_string(),
            reason: format!(
                "no handshake completed in {seconds:.1} s; first error: {}",
                first_error.unwrap_or_else(|| "none".into())
            ),
        });
    }
    let row = ChurnRow {
        target: kind,
        workers,
        seconds,
        handshakes: h1 - h0,
        handshakes_per_s: (h1 - h0) as f64 / seconds,
        failures: f1 - f0,
        first_error,
        vs_plain: None,
        vs_node: None,
    };
    ctx.progress.say(format!(
        "  {label}: {} handshakes/s, {} failures",
        si(row.handshakes_per_s),
        row.failures
    ));
    Ok(row)
}

/// What went wrong in one connect-and-close cycle.
pub(super) enum Cycle {
    /// No connection: the handshake failed or timed out.
    Handshake(String),
    /// Connected, but the close did not go as it should.
    Close(String),
}

/// One cycle: connect from `from`, upgrade, close cleanly.
pub(super) async fn cycle(
    from: std::net::Ipv4Addr,
    server: std::net::SocketAddr,
    path: &str,
) -> Result<(), Cycle> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake::connect(from, server, path)).await {
        Ok(Ok(conn)) => close(conn).await.map_err(Cycle::Close),
        Ok(Err(e)) => Err(Cycle::Handshake(e.to_string())),
        Err(_) => Err(Cycle::Handshake(
            "no answer to the handshake within 10 s".into(),
        )),
    }
}

/// Sends a close frame and waits for the server's close and end of stream.
async fn close(conn: Conn) -> Result<(), String> {
    let Conn {
        mut stream,
        leftover,
    } = conn;
    let mut out = Vec::with_capacity(8);
    frame::encode_client(
        frame::OP_CLOSE,
        &1000u16.to_be_bytes(),
        frame::random_mask(),
        &mut out,
    );
    stream
        .write_all(&out)
        .await
        .map_err(|e| format!("sending the close frame: {e}"))?;
    let mut buf = leftover;
    let wait = async {
        // Read (and ignore) until the server ends the stream; its close frame comes first.
        loop {
            buf.clear();
            buf.reserve(1024);
            match stream.read_buf(&mut buf).await {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                // A reset after the close handshake is an ending too.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
                Err(e) => return Err(format!("waiting for the server to close: {e}")),
            }
        }
    };
    match tokio::time::timeout(CLOSE_TIMEOUT, wait).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "the server did not close the connection within {} s of the close frame",
            CLOSE_TIMEOUT.as_secs()
        )),
    }
}
