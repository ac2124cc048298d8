//! The nine scenarios and what they share: the run's context, starting and stopping targets,
//! and the measured load phase used by broadcast and topics.
//!
//! Each scenario runs every selected target in turn, each from a fresh process, and adds its
//! rows to the [`Results`]; a target that fails adds a [`Failure`] instead and the run goes on
//! with the next one, so a long run still yields everything that worked.

pub mod broadcast;
pub mod churn;
pub mod consumers;
pub mod echo;
pub mod fault;
pub mod idle;
pub mod soak;
pub mod streams;
pub mod topics;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wsgate_business::Client;

use crate::business::{self, Registered, Role, Tally};
use crate::cli::{Plan, Scenario};
use crate::error::BenchError;
use crate::fleet::Fleet;
use crate::gate::{Gate, Pace};
use crate::progress::{Progress, si};
use crate::publisher::{self, Action, Broker, Doors, PublishStats, Route, Sender};
use crate::results::{Failure, LoadRow, Phase, Results};
use crate::target::{Programs, Running, TargetKind};

/// How long publishers may take to finish their last request after the phase ends.
const PUBLISHER_STOP: Duration = Duration::from_secs(15);

/// What every scenario needs.
#[derive(Debug)]
pub struct Ctx {
    pub plan: Plan,
    pub programs: Programs,
    /// The targets that will run (selected, and not skipped).
    pub targets: Vec<TargetKind>,
    /// The runtime of the publishers and bench business processes, apart from the clients'.
    pub driver: tokio::runtime::Handle,
    pub progress: Arc<Progress>,
    pub fd_limit: u64,
    pub max_clients: usize,
}

impl Ctx {
    /// Refuses a scenario that needs more sockets than this process may open.
    pub fn check_clients(&self, scenario: &'static str, wanted: usize) -> Result<(), BenchError> {
        if wanted > self.max_clients {
            return Err(BenchError::TooManyClients {
                scenario,
                wanted,
                max: self.max_clients,
                limit: self.fd_limit,
            });
        }
        Ok(())
    }

    /// Starts a fresh `kind`.
    pub async fn start(&self, kind: TargetKind) -> Result<Running, BenchError> {
        self.start_with(kind, &[]).await
    }

    /// Starts a fresh `kind`, with `extra` arguments after its benchmark settings.
    pub async fn start_with(
        &self,
        kind: TargetKind,
        extra: &[String],
    ) -> Result<Running, BenchError> {
        self.progress.say(format!("  starting {kind}"));
        Running::start(kind, &self.programs, extra).await
    }

    /// Kills a target and adds its log warnings to the results.
    pub async fn stop(&self, target: Running, results: &mut Results) {
        let (lines, first) = target.log.warnings();
        results.add_warnings(target.kind, lines, first);
        target.kill().await;
    }

    /// Starts a fresh `kind`, runs `body` on it and stops it again whatever `body` returned,
    /// adding its log warnings to `results`.
    pub async fn measure<T>(
        &self,
        kind: TargetKind,
        results: &mut Results,
        body: impl AsyncFnOnce(&Running) -> Result<T, BenchError>,
    ) -> Result<T, BenchError> {
        self.measure_with(kind, &[], results, body).await
    }

    /// [`Ctx::measure`] with `extra` arguments for the target.
    pub async fn measure_with<T>(
        &self,
        kind: TargetKind,
        extra: &[String],
        results: &mut Results,
        body: impl AsyncFnOnce(&Running) -> Result<T, BenchError>,
    ) -> Result<T, BenchError> {
        let target = self.start_with(kind, extra).await?;
        let measured = body(&target).await;
        self.stop(target, results).await;
        measured
    }

    /// Registers a bench business process playing `role` with `target` (wsgate) and runs it
    /// on the driver runtime; its client, which shuts the link down when dropped.
    pub async fn business(
        &self,
        target: &Running,
        role: Role,
        tally: Arc<Tally>,
    ) -> Result<Registered, BenchError> {
        let worker = target.worker_addr()?;
        let client = self.on_driver(business::start(worker, role, tally)).await?;
        Ok(Registered::new(client, self.driver.clone()))
    }

    /// Runs `body` on the driver runtime and waits for it.
    pub async fn on_driver<T: Send + 'static>(
        &self,
        body: impl Future<Output = Result<T, BenchError>> + Send + 'static,
    ) -> Result<T, BenchError> {
        self.driver
            .spawn(body)
            .await
            .map_err(|e| BenchError::Driver {
                what: "the bench's driver runtime".into(),
                reason: format!("a task failed: {e}"),
            })?
    }
}

/// Records that `scenario` failed for `target`.
pub fn failed(
    ctx: &Ctx,
    results: &mut Results,
    scenario: Scenario,
    target: TargetKind,
    e: &BenchError,
) {
    ctx.progress
        .say(format!("  {} {target} FAILED: {e}", scenario.name()));
    results.failures.push(Failure {
        scenario,
        target,
        error: e.to_string(),
    });
}

/// Polls `check` every 100 ms until it is true, at most `limit`.
pub async fn wait_until(
    what: impl Into<String>,
    limit: Duration,
    mut check: impl AsyncFnMut() -> Result<bool, BenchError>,
) -> Result<(), BenchError> {
    let start = Instant::now();
    loop {
        if check().await? {
            return Ok(());
        }
        if start.elapsed() >= limit {
            return Err(BenchError::Timeout {
                what: what.into(),
                secs: limit.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One measured load phase: publishers paced by a gate, clients counting.
pub struct LoadPhase<'a> {
    pub ctx: &'a Ctx,
    pub target: &'a Running,
    pub fleet: &'a Fleet,
    pub route: Route,
    pub sdk: Option<&'a Client>,
    /// The broker of the broker routes (the consumers scenario).
    pub broker: Option<&'a Broker>,
    pub action: Action,
    /// Deliveries per message.
    pub fanout: usize,
    pub phase: Phase,
    /// Names the phase in progress lines.
    pub label: String,
}

impl LoadPhase<'_> {
    /// Warms up, measures for the plan's duration, drains, and reports.
    pub async fn run(self) -> Result<LoadRow, BenchError> {
        let LoadPhase {
            ctx,
            target,
            fleet,
            route,
            sdk,
            broker,
            action,
            fanout,
            phase,
            label,
        } = self;
        let plan = &ctx.plan;
        let clients = fleet.count;
        let recorder = fleet.recorder.clone();
        let fanout_u64 = fanout as u64;
        let pace = match phase {
            Phase::Max => Pace::Window {
                in_flight: plan.window * clients as u64,
            },
            Phase::Backend => Pace::Answers,
            Phase::Fixed => Pace::Rate {
                per_sec: plan.rate as f64 / fanout.max(1) as f64,
            },
        };
        recorder.set_recording(false);
        let lost_before = recorder.closed_by_server();
        let drops_before = target.server_drops().await?;
        let gate = Arc::new(Gate::new(pace, fanout_u64, recorder.clone()));
        let stats = Arc::new(PublishStats::default());
        let in_flight = match (action, phase) {
            (_, Phase::Backend) => plan.publishers,
            // One topic every client is in fans out like a broadcast.
            (Action::Broadcast | Action::PublishTo(_), _) => plan.in_flight,
            (Action::Publish { .. }, _) => plan.topic_in_flight,
        };
        let doors = Doors {
            sdk,
            http: target.http,
            grpc: target.grpc,
            broker,
        };
        let senders = Sender::many(route, in_flight, doors, &ctx.driver).map_err(|reason| {
            BenchError::Driver {
                what: label.clone(),
                reason,
            }
        })?;
        let publishers =
            publisher::spawn(&ctx.driver, senders, action, gate.clone(), stats.clone());
        {
            let (gate, label) = (gate.clone(), label.clone());
            let start = Instant::now();
            let mut last = (Instant::now(), 0u64, 0u64);
            ctx.progress.show(move || {
                let now = Instant::now();
                let (d, p) = (gate.delivered(), gate.published());
                let secs = now.duration_since(last.0).as_secs_f64().max(1e-3);
                let line = format!(
                    "{label}: {:.0}s  deliveries {}/s  published {}/s ({} total)",
                    start.elapsed().as_secs_f64(),
                    si((d - last.1) as f64 / secs),
                    si((p - last.2) as f64 / secs),
                    si(p as f64),
                );
                last = (now, d, p);
                line
            });
        }

        tokio::time::sleep(plan.warmup).await;
        recorder.reset_latencies();
        recorder.set_recording(true);
        stats.set_measuring(true);
        let (d0, p0, t0) = (gate.delivered(), stats.ok(), Instant::now());
        tokio::time::sleep(plan.duration).await;
        let (d1, p1, seconds) = (gate.delivered(), stats.ok(), t0.elapsed().as_secs_f64());
        stats.set_measuring(false);
        gate.stop();
        for p in publishers {
            if tokio::time::timeout(PUBLISHER_STOP, p).await.is_err() {
                return Err(BenchError::Timeout {
                    what: format!(
                        "the {} publishers to finish their last request",
                        route.label()
                    ),
                    secs: PUBLISHER_STOP.as_secs(),
                });
            }
        }
        // Stragglers: wait until every successful publish is delivered, or the drain time.
        let expected = stats.ok() * fanout_u64;
        let drain_start = Instant::now();
        while gate.delivered() < expected && drain_start.elapsed() < plan.drain {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        recorder.set_recording(false);
        ctx.progress.clear();
        let delivered = gate.delivered();
        let server_drops = target.server_drops().await?.saturating_sub(drops_before);
        if stats.ok() == 0
            && let Some(e) = stats.first_error()
        {
            return Err(BenchError::Driver {
                what: format!("the {} publisher", route.label()),
                reason: e,
            });
        }
        let row = LoadRow {
            target: target.kind,
            route,
            phase,
            clients,
            fanout,
            requested_rate: (phase == Phase::Fixed).then_some(plan.rate),
            seconds,
            published: p1 - p0,
            publishes_per_s: (p1 - p0) as f64 / seconds,
            deliveries: d1 - d0,
            deliveries_per_s: (d1 - d0) as f64 / seconds,
            latency: recorder.latencies(),
            publishers: in_flight,
            round_trip: stats.round_trips(),
            drops: expected.saturating_sub(delivered),
            server_drops,
            publish_errors: stats.errors(),
            first_error: stats.first_error(),
            reported_recipients: stats.reported(),
            clients_lost: recorder.closed_by_server() - lost_before,
            clients_silent: recorder.silent_clients(),
            vs_plain: None,
            vs_node: None,
        };
        ctx.progress.say(format!(
            "  {label}: {} deliveries/s, {} publishes/s, p50 {} µs, p99 {} µs, p99.9 {} µs, publish round trip p50 {} µs p99 {} µs, drops {}{}",
            si(row.deliveries_per_s),
            si(row.publishes_per_s),
            row.latency.p50_us,
            row.latency.p99_us,
            row.latency.p999_us,
            row.round_trip.p50_us,
            row.round_trip.p99_us,
            row.drops,
            if row.clients_lost > 0 {
                format!(", {} clients lost ({})", row.clients_lost, recorder.first_end().unwrap_or_default())
            } else {
                String::new()
            }
        ));
        Ok(row)
    }
}
