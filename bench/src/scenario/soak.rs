//! Scenario 6, soak: wsgate under steady mixed traffic for `--duration` (10m for a real soak),
//! its resident memory and open files sampled all along; the drift after warm-up is the
//! figure (goal: within ±5 %, with no error).
//!
//! The traffic: `--soak-clients` clients each send a message every `--soak-interval` that an
//! echo business process sends back; a second business process broadcasts to everyone once
//! an interval; `--soak-churn` workers connect and close in a loop beside them. Errors are
//! every client the server closed, every failed churn cycle, broadcast and echo. wsgate only:
//! the peers have no business processes to soak.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use wsgate_business::Payload;

use crate::business::{Role, Tally};
use crate::client::Behaviour;
use crate::error::BenchError;
use crate::fleet::{self, FleetSpec};
use crate::handshake;
use crate::progress::si;
use crate::results::{Results, SoakRow, SoakSample};
use crate::target::{Running, TargetKind};

use super::churn::{Cycle, cycle};
use super::{Ctx, failed};
use crate::cli::Scenario;

pub async fn run(ctx: &Ctx, results: &mut Results) {
    let plan = &ctx.plan;
    ctx.progress.say(format!(
        "== soak: {} clients (a message every {:?} each), a broadcast every {:?}, {} churn workers, for {:?}",
        plan.soak_clients, plan.soak_interval, plan.soak_interval, plan.soak_churn, plan.duration
    ));
    if !ctx.targets.contains(&TargetKind::Wsgate) {
        ctx.progress
            .say("  soak runs on wsgate only, which is not among --targets: skipped");
        return;
    }
    match ctx
        .measure(TargetKind::Wsgate, results, async |target| {
            one(ctx, target).await
        })
        .await
    {
        Ok(row) => results.soak.push(row),
        Err(e) => failed(ctx, results, Scenario::Soak, TargetKind::Wsgate, &e),
    }
}

/// Open files of a process, from /proc.
fn open_files(pid: u32) -> Result<u64, BenchError> {
    let path = format!("/proc/{pid}/fd");
    std::fs::read_dir(&path)
        .map(|d| d.count() as u64)
        .map_err(|e| BenchError::Target {
            target: "wsgate".into(),
            reason: format!("cannot read {path}: {e}"),
        })
}

/// What the churn workers share.
#[derive(Default)]
struct Churn {
    cycles: AtomicU64,
    failures: AtomicU64,
    next_source: AtomicUsize,
    stop: AtomicBool,
    first_error: std::sync::Mutex<Option<String>>,
}

impl Churn {
    fn fail(&self, error: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_or_insert(error);
    }
}

async fn one(ctx: &Ctx, target: &Running) -> Result<SoakRow, BenchError> {
    let plan = &ctx.plan;
    let n = plan.soak_clients;
    ctx.check_clients("soak", n + plan.soak_churn)?;
    let echo_tally = Arc::new(Tally::default());
    let _echo = ctx.business(target, Role::Echo, echo_tally.clone()).await?;
    let publisher = ctx
        .business(target, Role::Publisher, Arc::new(Tally::default()))
        .await?;
    let (go, start) = watch::channel(false);
    let fleet = fleet::connect(
        FleetSpec {
            label: "soak wsgate".into(),
            target: "wsgate".into(),
            count: n,
            server: target.ws,
            path: fleet::same_path(target.client_path("")),
            behaviour: Behaviour::Paced(start, plan.soak_interval),
            source_addrs: plan.source_addrs,
            concurrency: plan.connect_concurrency,
        },
        &ctx.progress,
    )
    .await?;
    let recorder = fleet.recorder.clone();

    // Churn beside the steady clients.
    let churn = Arc::new(Churn::default());
    let churners: Vec<_> = (0..plan.soak_churn)
        .map(|_| {
            let (churn, path, server) = (churn.clone(), target.client_path(""), target.ws);
            let sources = plan.source_addrs;
            tokio::spawn(async move {
                while !churn.stop.load(Ordering::Relaxed) {
                    let from = handshake::source_addr(
                        churn.next_source.fetch_add(1, Ordering::Relaxed),
                        sources,
                    );
                    match cycle(from, server, &path).await {
                        Ok(()) => {
                            churn.cycles.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(Cycle::Handshake(e) | Cycle::Close(e)) => {
                            churn.fail(e);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
            })
        })
        .collect();

    // Broadcasts, one an interval, on the driver runtime.
    let broadcasts = Arc::new(AtomicU64::new(0));
    let broadcast_errors = Arc::new(Tally::default());
    let stop_broadcast = Arc::new(AtomicBool::new(false));
    let broadcaster = {
        let (client, count, errors, stop) = (
            publisher.client.clone(),
            broadcasts.clone(),
            broadcast_errors.clone(),
            stop_broadcast.clone(),
        );
        let every = plan.soak_interval;
        ctx.driver.spawn(async move {
            let mut tick = tokio::time::interval(every);
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                match client.broadcast(Payload::text("soak broadcast"), []).await {
                    Ok(_) => {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => errors.fail(format!("a broadcast failed: {e}")),
                }
            }
        })
    };

    let begin = Instant::now();
    {
        let (recorder, churn) = (recorder.clone(), churn.clone());
        let mut last = (Instant::now(), 0u64);
        let total = plan.duration;
        ctx.progress.show(move || {
            let now = Instant::now();
            let d = recorder.delivered();
            let secs = now.duration_since(last.0).as_secs_f64().max(1e-3);
            let line = format!(
                "soak wsgate: {:.0}/{:.0}s  messages {}/s, churn {} cycles",
                begin.elapsed().as_secs_f64(),
                total.as_secs_f64(),
                si((d - last.1) as f64 / secs),
                churn.cycles.load(Ordering::Relaxed)
            );
            last = (now, d);
            line
        });
    }
    let _ = go.send(true);
    recorder.set_recording(true);
    let lost_before = recorder.closed_by_server();
    let mut samples = Vec::new();
    let mut sample = tokio::time::interval(plan.soak_sample);
    while begin.elapsed() < plan.duration {
        sample.tick().await;
        samples.push(SoakSample {
            at_secs: begin.elapsed().as_secs_f64(),
            rss_bytes: target.rss_bytes()?,
            open_files: open_files(target.pid)?,
            connections: target.connections().await?,
        });
    }
    let seconds = begin.elapsed().as_secs_f64();
    stop_broadcast.store(true, Ordering::Relaxed);
    churn.stop.store(true, Ordering::Relaxed);
    for c in churners {
        let _ = tokio::time::timeout(Duration::from_secs(15), c).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(15), broadcaster).await;
    recorder.set_recording(false);
    ctx.progress.clear();
    let clients_lost = recorder.closed_by_server() - lost_before;
    let delivered = recorder.delivered();
    fleet.close().await;

    let warmup = plan.warmup.max(plan.duration.mul_f64(0.2));
    let row = SoakRow::new(
        n,
        plan.soak_churn,
        seconds,
        warmup.as_secs_f64(),
        samples,
        delivered,
        broadcasts.load(Ordering::Relaxed),
        churn.cycles.load(Ordering::Relaxed),
        [
            ("clients closed by the server", clients_lost),
            (
                "failed churn cycles",
                churn.failures.load(Ordering::Relaxed),
            ),
            ("failed broadcasts", broadcast_errors.failed()),
            ("failed echoes", echo_tally.failed()),
        ],
        churn
            .first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .or_else(|| broadcast_errors.first_error())
            .or_else(|| echo_tally.first_error())
            .or_else(|| recorder.first_end()),
    );
    ctx.progress.say(format!(
        "  soak wsgate: {:.0} s, RSS {:.1} MiB after warm-up -> {:.1} MiB at the end ({:+.1} %), open files {} -> {}, {} messages, {} errors",
        row.seconds,
        row.rss_after_warmup as f64 / 1048576.0,
        row.rss_end as f64 / 1048576.0,
        row.rss_drift_pct,
        row.open_files_after_warmup,
        row.open_files_end,
        si(row.messages as f64),
        row.errors
    ));
    Ok(row)
}
