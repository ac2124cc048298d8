//! Scenario 7, fault: what clients see when a business process is killed, and when one hangs,
//! in the middle of a steady stream, with acknowledged events. wsgate only: the peers have no
//! business processes.
//!
//! wsgate runs with a short `--worker-ack-timeout` (`--fault-ack-timeout`, 2 s) and a worker
//! heartbeat of a quarter of it (the gateway looks for a stalled link when a ping is due). Two
//! echo business processes register with acks, each a process of its own (this executable in
//! its hidden `business-echo` mode), so that they can really be killed and stopped.
//! `--fault-clients` clients send numbered messages open loop, together `--fault-rate` a
//! second, and log every answer. Each step below is `--fault-settle` (3 s) after the last:
//!
//! 1. sending starts;
//! 2. fault 1: echo A is killed (SIGKILL);
//! 3. a replacement, echo C, is started;
//! 4. fault 2: echo B, which holds every connection by then (a connection stays with its
//!    process while that lives; C takes connections over only on a fault), is stopped
//!    (SIGSTOP) for the ack timeout plus 1 s, then killed (SIGKILL) and reaped;
//! 5. sending stops; the last answers are waited for, at most `--drain`.
//!
//! Each fault's row accounts for the messages sent in its window: fault 1's from the start of
//! sending to the moment C was registered, fault 2's from then to the end of sending, so each
//! window holds the traffic that was in flight when its fault hit. The accounting itself is
//! [`crate::ledger`]. Every echo process is killed and reaped when the scenario ends, whatever
//! way it ends; and each one exits by itself when its standard input (held by the bench)
//! closes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::business::READY;
use crate::cli::Scenario;
use crate::client::Behaviour;
use crate::error::BenchError;
use crate::fleet::{self, FleetSpec};
use crate::ledger::{self, Ledger, Window};
use crate::progress::si;
use crate::results::{FaultKind, FaultRow, Results};
use crate::stamp;
use crate::target::{Running, TargetKind, metric};

use super::{Ctx, failed};

/// How long an echo process may take to register.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long killing (and reaping) or stopping a process may take.
const SIGNAL_TIMEOUT: Duration = Duration::from_secs(5);
/// Output lines of an echo process kept to explain its failure.
const KEEP_TAIL: usize = 10;

pub async fn run(ctx: &Ctx, results: &mut Results) {
    let plan = &ctx.plan;
    ctx.progress.say(format!(
        "== fault: {} clients, {} messages/s; two echo processes with acks, ack timeout {:?}; one killed, later one stopped for {:?}",
        plan.fault_clients, plan.fault_rate, plan.fault_ack_timeout, plan.fault_stop
    ));
    for &kind in &ctx.targets {
        match kind {
            TargetKind::Wsgate => match one(ctx, results).await {
                Ok(rows) => results.fault.extend(rows),
                Err(e) => failed(ctx, results, Scenario::Fault, kind, &e),
            },
            TargetKind::Plain | TargetKind::Node => ctx.progress.say(format!(
                "  fault {kind}: skipped: it has no business processes to kill (wsgate only)"
            )),
        }
    }
}

async fn one(ctx: &Ctx, results: &mut Results) -> Result<Vec<FaultRow>, BenchError> {
    let plan = &ctx.plan;
    ctx.check_clients("fault", plan.fault_clients)?;
    let exe = std::env::current_exe().map_err(|e| BenchError::Driver {
        what: "the fault scenario's echo processes".into(),
        reason: format!("cannot find this executable to start them: {e}"),
    })?;
    let ack = plan.fault_ack_timeout;
    let heartbeat = (ack / 4).max(Duration::from_millis(25));
    let extra = [
        "--worker-ack-timeout".to_owned(),
        format!("{}ms", ack.as_millis()),
        "--worker-heartbeat-interval".to_owned(),
        format!("{}ms", heartbeat.as_millis()),
    ];
    ctx.measure_with(TargetKind::Wsgate, &extra, results, async |target| {
        let mut echoes = Echoes {
            exe: exe.clone(),
            worker: target.worker_addr()?,
            running: Vec::new(),
        };
        let measured = faults(ctx, target, &mut echoes).await;
        // Every echo process killed and reaped, whatever happened.
        echoes.kill_all().await;
        ctx.progress.clear();
        measured
    })
    .await
}

/// The gateway's counters of redelivered events and ack timeouts.
async fn counters(target: &Running) -> Result<(u64, u64), BenchError> {
    let text = target.metrics().await?;
    Ok((
        metric(&text, "wsgate_events_redelivered_total"),
        metric(&text, "wsgate_worker_ack_timeouts_total"),
    ))
}

/// Sends, faults, drains and accounts; the two rows.
async fn faults(
    ctx: &Ctx,
    target: &Running,
    echoes: &mut Echoes,
) -> Result<Vec<FaultRow>, BenchError> {
    let plan = &ctx.plan;
    let n = plan.fault_clients;
    let settle = plan.fault_settle;
    echoes.start("A").await?;
    echoes.start("B").await?;

    let ledger = Arc::new(Ledger::new(n));
    let (go, start) = watch::channel(false);
    let fleet = fleet::connect(
        FleetSpec {
            label: "fault wsgate".into(),
            target: "wsgate".into(),
            count: n,
            server: target.ws,
            path: fleet::same_path(target.client_path("")),
            behaviour: Behaviour::Numbered(start, plan.fault_interval(), ledger.clone()),
            source_addrs: plan.source_addrs,
            concurrency: plan.connect_concurrency,
        },
        &ctx.progress,
    )
    .await?;
    let recorder = fleet.recorder.clone();
    let step: Arc<Mutex<&'static str>> = Arc::new(Mutex::new("sending"));
    let begin = Instant::now();
    {
        let (ledger, step) = (ledger.clone(), step.clone());
        let mut last = (Instant::now(), 0u64);
        ctx.progress.show(move || {
            let now = Instant::now();
            let answers = ledger.answers();
            let secs = now.duration_since(last.0).as_secs_f64().max(1e-3);
            let line = format!(
                "fault wsgate: {:.0}s  {}  sent {}, answers {} ({}/s), unanswered {}",
                begin.elapsed().as_secs_f64(),
                lock(&step),
                si(ledger.sent() as f64),
                si(answers as f64),
                si((answers - last.1) as f64 / secs),
                ledger.open()
            );
            last = (now, answers);
            line
        });
    }
    let set_step = |what: &'static str| *lock(&step) = what;

    let before = counters(target).await?;
    let begin_ns = stamp::now_nanos();
    let _ = go.send(true);
    let at = |ns: u64| ns.saturating_sub(begin_ns) as f64 / 1e9;
    tokio::time::sleep(settle).await;

    let kill_at = stamp::now_nanos();
    let pid_a = echoes.kill("A").await?;
    set_step("after fault 1");
    ctx.progress.say(format!(
        "  fault 1 at {:.1} s: echo A (pid {pid_a}) killed (SIGKILL)",
        at(kill_at)
    ));
    tokio::time::sleep(settle).await;

    let pid_c = echoes.start("C").await?;
    let boundary = stamp::now_nanos();
    let middle = counters(target).await?;
    set_step("replacement started");
    ctx.progress.say(format!(
        "  replacement echo C (pid {pid_c}) registered at {:.1} s",
        at(boundary)
    ));
    tokio::time::sleep(settle).await;

    let stop_at = stamp::now_nanos();
    let pid_b = echoes.stop("B").await?;
    set_step("fault 2: B stopped");
    tokio::time::sleep(plan.fault_stop).await;
    let kill_b_at = stamp::now_nanos();
    echoes.kill("B").await?;
    set_step("after fault 2");
    ctx.progress.say(format!(
        "  fault 2 at {:.1} s: echo B (pid {pid_b}) stopped (SIGSTOP), killed (SIGKILL) {:.1} s later",
        at(stop_at),
        kill_b_at.saturating_sub(stop_at) as f64 / 1e9
    ));
    tokio::time::sleep(settle).await;

    let end_ns = stamp::now_nanos();
    ledger.stop_sending();
    set_step("draining");
    let drain = Instant::now();
    while ledger.open() > 0 && drain.elapsed() < plan.drain {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The SDK acknowledges within 20 ms of taking an event: wait (a little) for the last
    // acknowledgements, so that killing the last echo at the end hands on nothing, which the
    // gateway, with no process left, would drop and log.
    let acked = Instant::now();
    while target
        .metrics()
        .await
        .map_or(0, |t| metric(&t, "wsgate_events_unacked"))
        > 0
        && acked.elapsed() < Duration::from_secs(1)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = counters(target).await?;
    ctx.progress.clear();
    let logs = ledger.snapshot();
    let clients_lost = recorder.closed_by_server();
    let first_end = recorder.first_end();
    fleet.close().await;

    let windows = [
        Window {
            from: begin_ns,
            fault: kill_at,
            to: boundary,
        },
        Window {
            from: boundary,
            fault: stop_at,
            to: end_ns,
        },
    ];
    let (accounts, unexpected) = ledger::account(&logs, &windows);
    let ms = |ns: u64| ns as f64 / 1e6;
    let stopped = kill_b_at.saturating_sub(stop_at) as f64 / 1e9;
    let faults = [
        (
            FaultKind::Kill,
            "one of the two echo processes killed (SIGKILL)".to_owned(),
            None,
            (before, middle),
        ),
        (
            FaultKind::Stop,
            format!(
                "the echo process holding every connection stopped (SIGSTOP) for {stopped:.1} s, then killed"
            ),
            Some(stopped),
            (middle, after),
        ),
    ];
    let mut rows = Vec::new();
    for ((fault, action, stopped_secs, (c0, c1)), (w, a)) in
        faults.into_iter().zip(windows.iter().zip(accounts))
    {
        let row = FaultRow {
            fault,
            action,
            clients: n,
            rate: plan.fault_rate,
            ack_timeout_secs: plan.fault_ack_timeout.as_secs_f64(),
            from_secs: at(w.from),
            fault_at_secs: at(w.fault),
            to_secs: at(w.to),
            stopped_secs,
            sent: a.sent,
            answered: a.answered,
            lost: a.lost,
            duplicated: a.duplicated,
            out_of_order: a.out_of_order,
            takeover_ms: a.takeover_ns.map(ms),
            never_answered_after: a.never_answered_after,
            longest_gap_ms: ms(a.longest_gap_ns),
            slowest_answer_ms: ms(a.slowest_ns),
            redelivered: c1.0.saturating_sub(c0.0),
            ack_timeouts: c1.1.saturating_sub(c0.1),
            clients_lost,
            unexpected_answers: unexpected,
            first_error: first_end.clone(),
        };
        ctx.progress.say(format!(
            "  fault {} ({}): sent {}, answered {}, lost {}, duplicated {}, out of order {}, takeover {}, longest gap {:.0} ms, slowest answer {:.0} ms; gateway: {} redelivered, {} ack timeouts{}",
            rows.len() + 1,
            row.fault.label(),
            row.sent,
            row.answered,
            row.lost,
            row.duplicated,
            row.out_of_order,
            row.takeover_ms
                .map_or_else(|| "never".to_owned(), |t| format!("{t:.0} ms")),
            row.longest_gap_ms,
            row.slowest_answer_ms,
            row.redelivered,
            row.ack_timeouts,
            if row.clients_lost > 0 {
                format!(
                    "; {} clients closed by the server ({})",
                    row.clients_lost,
                    row.first_error.as_deref().unwrap_or("?")
                )
            } else {
                String::new()
            }
        ));
        rows.push(row);
    }
    Ok(rows)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One echo business process the scenario started.
#[derive(Debug)]
struct Echo {
    name: &'static str,
    child: Child,
    pid: u32,
    /// Its last lines on stderr.
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Echo {
    fn tail(&self) -> String {
        let tail = lock(&self.tail);
        if tail.is_empty() {
            "(it printed nothing)".into()
        } else {
            tail.iter().cloned().collect::<Vec<_>>().join("\n")
        }
    }

    fn error(&self, reason: String) -> BenchError {
        BenchError::Driver {
            what: format!("echo {} (pid {})", self.name, self.pid),
            reason,
        }
    }
}

/// The echo processes running, each killed and reaped by [`Echoes::kill`] or
/// [`Echoes::kill_all`] (and, as a last resort, killed when dropped).
#[derive(Debug)]
struct Echoes {
    exe: PathBuf,
    worker: SocketAddr,
    running: Vec<Echo>,
}

impl Echoes {
    /// Starts echo `name` and waits until it is registered; its pid.
    async fn start(&mut self, name: &'static str) -> Result<u32, BenchError> {
        let fail = |reason: String| BenchError::Driver {
            what: format!("echo {name}"),
            reason,
        };
        let mut child = Command::new(&self.exe)
            .args([
                "business-echo",
                "--worker",
                &self.worker.to_string(),
                "--acks",
            ])
            // Held open by the bench: the process ends when it closes, whatever way the bench
            // ends.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(format!("cannot run {}: {e}", self.exe.display())))?;
        let (Some(pid), Some(stdout), Some(stderr)) =
            (child.id(), child.stdout.take(), child.stderr.take())
        else {
            let _ = child.kill().await;
            return Err(fail(
                "it exited at once, or its output could not be captured".into(),
            ));
        };
        let tail: Arc<Mutex<VecDeque<String>>> = Arc::default();
        {
            let tail = tail.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut tail = lock(&tail);
                    if tail.len() == KEEP_TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            });
        }
        // Kept from here on, so that every way out kills it.
        self.running.push(Echo {
            name,
            child,
            pid,
            tail,
        });
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with(READY) {
                    return true;
                }
            }
            false
        })
        .await;
        let echo = self.find(name)?;
        match ready {
            Ok(true) => {
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                Ok(pid)
            }
            Ok(false) => {
                // Let the stderr task collect the last words.
                tokio::time::sleep(Duration::from_millis(100)).await;
                Err(echo.error(format!(
                    "it exited before registering with wsgate; its last output:\n{}",
                    echo.tail()
                )))
            }
            Err(_) => Err(echo.error(format!(
                "it did not register with wsgate within {} s; its last output:\n{}",
                START_TIMEOUT.as_secs(),
                echo.tail()
            ))),
        }
    }

    fn find(&mut self, name: &str) -> Result<&mut Echo, BenchError> {
        self.running
            .iter_mut()
            .find(|e| e.name == name)
            .ok_or_else(|| BenchError::Driver {
                what: format!("echo {name}"),
                reason: "is not running".into(),
            })
    }

    /// Checks that echo `name` still runs: one that exited by itself would make the fault
    /// meaningless.
    fn alive(&mut self, name: &str) -> Result<&mut Echo, BenchError> {
        let echo = self.find(name)?;
        match echo.child.try_wait() {
            Ok(None) => Ok(echo),
            Ok(Some(status)) => Err(echo.error(format!(
                "exited by itself ({status}) before its fault; its last output:\n{}",
                echo.tail()
            ))),
            Err(e) => Err(echo.error(format!("cannot tell whether it runs: {e}"))),
        }
    }

    /// Kills echo `name` (SIGKILL) and reaps it; its pid.
    async fn kill(&mut self, name: &str) -> Result<u32, BenchError> {
        self.alive(name)?;
        let Some(i) = self.running.iter().position(|e| e.name == name) else {
            return Err(BenchError::Driver {
                what: format!("echo {name}"),
                reason: "is not running".into(),
            });
        };
        let mut echo = self.running.remove(i);
        match tokio::time::timeout(SIGNAL_TIMEOUT, echo.child.kill()).await {
            Ok(Ok(())) => Ok(echo.pid),
            Ok(Err(e)) => Err(echo.error(format!("cannot kill it: {e}"))),
            // Dropped here: killed on drop, reaped in the background.
            Err(_) => Err(echo.error(format!(
                "it was not gone {} s after SIGKILL",
                SIGNAL_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Stops echo `name` (SIGSTOP) where it stands; its pid.
    async fn stop(&mut self, name: &str) -> Result<u32, BenchError> {
        let echo = self.alive(name)?;
        let pid = echo.pid;
        let stopped = tokio::time::timeout(
            SIGNAL_TIMEOUT,
            Command::new("kill")
                .args(["-STOP", &pid.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .output(),
        )
        .await;
        match stopped {
            Ok(Ok(out)) if out.status.success() => Ok(pid),
            Ok(Ok(out)) => Err(echo.error(format!(
                "kill -STOP {pid} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))),
            Ok(Err(e)) => Err(echo.error(format!("cannot run kill -STOP {pid}: {e}"))),
            Err(_) => Err(echo.error(format!(
                "kill -STOP {pid} did not finish within {} s",
                SIGNAL_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Kills (SIGKILL, which also ends a stopped process) and reaps every echo still running.
    async fn kill_all(&mut self) {
        for mut echo in self.running.drain(..) {
            let _ = tokio::time::timeout(SIGNAL_TIMEOUT, echo.child.kill()).await;
        }
    }
}
