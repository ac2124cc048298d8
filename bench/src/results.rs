//! The figures of a run, as written to results.json and rendered to Markdown and SVG: one
//! row per scenario, target and phase, plus what failed, what was skipped, the targets' log
//! warnings and the PASS/FAIL checks.
//!
//! Ratios to the peers are filled in after all rows exist ([`Results::compute_ratios`]): each
//! row's headline figure divided by the same figure of `plain` and of `node` in the same run
//! under the same conditions (same connection count, same phase, same
//! messages in flight).

use serde::Serialize;

use crate::cli::{Plan, Scenario};
use crate::machine::Machine;
use crate::publisher::Route;
use crate::recorder::Percentiles;
use crate::target::TargetKind;
use crate::verdict::Check;

/// idle: memory and connect rate at one connection count.
#[derive(Debug, Clone, Serialize)]
pub struct IdleRow {
    pub target: TargetKind,
    pub connections: usize,
    /// What the target itself reported holding.
    pub server_reported: u64,
    pub connect_secs: f64,
    pub connects_per_s: f64,
    pub baseline_rss_bytes: u64,
    pub rss_bytes: u64,
    pub per_conn_bytes: f64,
    pub per_conn_kib: f64,
    /// per_conn_bytes / the peer's (lower is better).
    pub vs_plain: Option<f64>,
    pub vs_node: Option<f64>,
}

/// broadcast or topics: which half of the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Closed-loop, as fast as the target sustains without dropping.
    Max,
    /// What a backend sees: `--publishers` publishers, each sending its next request as soon
    /// as the last one is answered, with no other flow control.
    Backend,
    /// Open-loop at --rate deliveries per second.
    Fixed,
}

impl Phase {
    pub fn label(self) -> &'static str {
        match self {
            Phase::Max => "max",
            Phase::Backend => "backend",
            Phase::Fixed => "fixed",
        }
    }
}

/// broadcast or topics: one measured phase.
#[derive(Debug, Clone, Serialize)]
pub struct LoadRow {
    pub target: TargetKind,
    pub route: Route,
    pub phase: Phase,
    pub clients: usize,
    /// Deliveries each message makes (clients, or subscribers per topic).
    pub fanout: usize,
    /// Requested deliveries per second (fixed phase).
    pub requested_rate: Option<u64>,
    pub seconds: f64,
    pub published: u64,
    pub publishes_per_s: f64,
    pub deliveries: u64,
    pub deliveries_per_s: f64,
    pub latency: Percentiles,
    /// Publisher tasks, each with one request in flight.
    pub publishers: usize,
    /// Publish round trips (request sent to answer read) while measuring.
    pub round_trip: Percentiles,
    /// Expected minus received after the drain.
    pub drops: u64,
    /// What the target counted as dropped (slow consumers, skipped sockets).
    pub server_drops: u64,
    pub publish_errors: u64,
    pub first_error: Option<String>,
    /// Recipients the target itself reported for the successful publishes, summed.
    pub reported_recipients: u64,
    /// Clients the server closed during the phase.
    pub clients_lost: u64,
    /// Clients that had received nothing at all by the end of the phase.
    pub clients_silent: usize,
    /// max: deliveries_per_s / the peer's; fixed: p99 / the peer's (lower is better).
    pub vs_plain: Option<f64>,
    pub vs_node: Option<f64>,
}

/// echo: round trips.
#[derive(Debug, Clone, Serialize)]
pub struct EchoRow {
    pub target: TargetKind,
    /// "business" (wsgate via a business process), "business, acks" (the same process
    /// registered with acks, acknowledging every event it receives) or "native" (the hub echoes).
    pub via: &'static str,
    /// The business process acknowledged events (wsgate only).
    pub acks: bool,
    pub clients: usize,
    /// Messages each client kept in flight.
    pub in_flight: usize,
    pub seconds: f64,
    pub round_trips: u64,
    pub round_trips_per_s: f64,
    pub latency: Percentiles,
    pub clients_lost: u64,
    pub business_errors: u64,
    pub first_error: Option<String>,
    pub vs_plain: Option<f64>,
    pub vs_node: Option<f64>,
}

/// churn: connect, close, repeat.
#[derive(Debug, Clone, Serialize)]
pub struct ChurnRow {
    pub target: TargetKind,
    pub workers: usize,
    pub seconds: f64,
    pub handshakes: u64,
    pub handshakes_per_s: f64,
    pub failures: u64,
    pub first_error: Option<String>,
    pub vs_plain: Option<f64>,
    pub vs_node: Option<f64>,
}

/// soak: one sample of the gateway process.
#[derive(Debug, Clone, Serialize)]
pub struct SoakSample {
    pub at_secs: f64,
    pub rss_bytes: u64,
    pub open_files: u64,
    pub connections: u64,
}

/// soak: steady mixed traffic for a long time, and how the gateway's memory and open files
/// moved after warm-up.
#[derive(Debug, Clone, Serialize)]
pub struct SoakRow {
    pub clients: usize,
    pub churn_workers: usize,
    pub seconds: f64,
    pub warmup_secs: f64,
    /// Messages the steady clients received (echoes and broadcasts).
    pub messages: u64,
    pub broadcasts: u64,
    pub churn_cycles: u64,
    /// Mean of the first three samples after warm-up, and of the last three.
    pub rss_after_warmup: u64,
    pub rss_end: u64,
    pub rss_max: u64,
    /// (end - after warm-up) / after warm-up, in percent.
    pub rss_drift_pct: f64,
    pub open_files_after_warmup: u64,
    pub open_files_end: u64,
    pub errors: u64,
    /// Each kind of error and its count.
    pub error_kinds: Vec<(String, u64)>,
    pub first_error: Option<String>,
    pub samples: Vec<SoakSample>,
}

impl SoakRow {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        clients: usize,
        churn_workers: usize,
        seconds: f64,
        warmup_secs: f64,
        samples: Vec<SoakSample>,
        messages: u64,
        broadcasts: u64,
        churn_cycles: u64,
        errors: [(&str, u64); 4],
        first_error: Option<String>,
    ) -> SoakRow {
        let after: Vec<&SoakSample> = samples
            .iter()
            .filter(|s| s.at_secs >= warmup_secs)
            .collect();
        let mean = |picked: &[&SoakSample], f: fn(&SoakSample) -> u64| {
            if picked.is_empty() {
                0
            } else {
                picked.iter().map(|s| f(s)).sum::<u64>() / picked.len() as u64
            }
        };
        let first = &after[..after.len().min(3)];
        let last = &after[after.len().saturating_sub(3)..];
        let rss_after_warmup = mean(first, |s| s.rss_bytes);
        let rss_end = mean(last, |s| s.rss_bytes);
        let rss_drift_pct = if rss_after_warmup == 0 {
            0.0
        } else {
            (rss_end as f64 - rss_after_warmup as f64) / rss_after_warmup as f64 * 100.0
        };
        SoakRow {
            clients,
            churn_workers,
            seconds,
            warmup_secs,
            messages,
            broadcasts,
            churn_cycles,
            rss_after_warmup,
            rss_end,
            rss_max: after.iter().map(|s| s.rss_bytes).max().unwrap_or(0),
            rss_drift_pct,
            open_files_after_warmup: mean(first, |s| s.open_files),
            open_files_end: mean(last, |s| s.open_files),
            errors: errors.iter().map(|(_, n)| n).sum(),
            error_kinds: errors.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect(),
            first_error,
            samples,
        }
    }
}

/// fault: what was done to a business process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultKind {
    /// SIGKILL: the process and its socket are gone at once.
    Kill,
    /// SIGSTOP past the ack timeout, then SIGKILL: a process that hangs behind a live socket.
    Stop,
}

impl FaultKind {
    pub fn label(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Stop => "stop",
        }
    }
}

/// fault: one fault and the messages of its window (sent from the end of the previous
/// fault's window, or the start of sending, to the end of its own).
#[derive(Debug, Clone, Serialize)]
pub struct FaultRow {
    pub fault: FaultKind,
    /// What was done, for the report.
    pub action: String,
    pub clients: usize,
    /// Messages per second requested over all clients.
    pub rate: u64,
    pub ack_timeout_secs: f64,
    /// From the start of sending: the window and the fault.
    pub from_secs: f64,
    pub fault_at_secs: f64,
    pub to_secs: f64,
    /// stop: how long the process stayed stopped before it was killed.
    pub stopped_secs: Option<f64>,
    pub sent: u64,
    /// Answered at least once.
    pub answered: u64,
    /// Never answered by the end of the drain (the goal is 0).
    pub lost: u64,
    /// Answered more than once (redelivered after the process had echoed it).
    pub duplicated: u64,
    /// First answers that came after the first answer to a later message of the same
    /// connection.
    pub out_of_order: u64,
    /// From the fault to the last connection's first answer to a message it sent at or
    /// after the fault, in ms; `None` when a connection never got one.
    pub takeover_ms: Option<f64>,
    /// Connections that sent after the fault and never got an answer to any of those messages.
    pub never_answered_after: u64,
    /// The longest time between two answers in a row on one connection, the second after
    /// the fault, the first before the window's end, in ms.
    pub longest_gap_ms: f64,
    /// The slowest first answer to a message of the window, send to arrival, in ms.
    pub slowest_answer_ms: f64,
    /// What the gateway counted over the window: events redelivered, links closed for
    /// acknowledging nothing past the ack timeout.
    pub redelivered: u64,
    pub ack_timeouts: u64,
    /// Clients the server closed (over the whole run; each fault row carries the same).
    pub clients_lost: u64,
    /// Answers to messages never sent (the whole run; should be 0).
    pub unexpected_answers: u64,
    pub first_error: Option<String>,
}

/// streams: where the gateway keeps a stream's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamHistory {
    /// No `--stream` rule: s0 is a plain topic (clients of the subprotocol get `message`
    /// frames without offsets).
    Off,
    /// `--stream "topics s* history=100 age=10m"`, the in-memory engine.
    Memory,
    /// The same rule with `--stream-engine redis`.
    Redis,
}

impl StreamHistory {
    pub fn label(self) -> &'static str {
        match self {
            StreamHistory::Off => "history off",
            StreamHistory::Memory => "history on, memory",
            StreamHistory::Redis => "history on, Redis",
        }
    }
}

/// streams: publish throughput with one way of keeping history.
#[derive(Debug, Clone, Serialize)]
pub struct StreamRow {
    pub history: StreamHistory,
    /// The gateway's stream flags.
    pub flags: String,
    /// The measured phase; `None` when skipped or failed.
    pub load: Option<LoadRow>,
    /// Over every client and the whole run, what the protocol promises never happens: a
    /// publication skipping offsets or under a new epoch, one at or below the position held.
    pub gaps: u64,
    pub duplicates: u64,
    /// Frames that were not the protocol, or `error` frames.
    pub bad_frames: u64,
    pub first_bad: Option<String>,
    /// deliveries/s ÷ the history-off row's.
    pub vs_off: Option<f64>,
    /// Why it was not measured.
    pub skipped: Option<String>,
}

/// streams: a reconnect storm with one engine.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryRow {
    pub history: StreamHistory,
    pub flags: String,
    pub clients: usize,
    /// Publications each client received before dropping its socket, and published while
    /// it was away (what it must get back).
    pub before: u64,
    pub missed: u64,
    /// Clients that got `joined` with `"recovered": true` after a gapless replay of every
    /// publication they missed; and the others, with the first few reasons.
    pub recovered: usize,
    pub not_recovered: usize,
    pub reasons: Vec<String>,
    /// Publications replayed, over every client.
    pub replayed: u64,
    /// From the storm's start to each recovered client's `joined` (µs).
    pub time: Percentiles,
    /// From the storm's start until every handshake was answered, and until the last client
    /// recovered (or the bench stopped waiting).
    pub handshakes_ms: f64,
    pub total_ms: f64,
    /// Clients the server closed during the run.
    pub clients_lost: u64,
    pub skipped: Option<String>,
}

/// consumers: where the broadcasts came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsumerSource {
    /// `POST /api/v1/broadcast`: the baseline.
    Http,
    /// A RabbitMQ queue read by the gateway's `rabbitmq` consumer.
    Rabbitmq,
    /// A Redis list read by the gateway's `redis-list` consumer.
    RedisList,
}

impl ConsumerSource {
    pub const ALL: [ConsumerSource; 3] = [
        ConsumerSource::Http,
        ConsumerSource::Rabbitmq,
        ConsumerSource::RedisList,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ConsumerSource::Http => "HTTP API",
            ConsumerSource::Rabbitmq => "RabbitMQ queue → consumer",
            ConsumerSource::RedisList => "Redis list → consumer",
        }
    }
}

/// consumers: broadcasts from one source to the same clients of one gateway.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerRow {
    pub source: ConsumerSource,
    /// How the producer wrote, for the report.
    pub how: String,
    /// The measured phase; `None` when skipped or failed.
    pub load: Option<LoadRow>,
    /// What the gateway's consumer counted over the whole phase (warm-up and drain included):
    /// messages carried out, refused, and tries that found the gateway unable to take one.
    pub consumed: u64,
    pub bad: u64,
    pub retries: u64,
    /// deliveries/s ÷ the HTTP row's.
    pub vs_http: Option<f64>,
    /// Why it was not measured.
    pub skipped: Option<String>,
}

/// A scenario that failed for a target.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub scenario: Scenario,
    pub target: TargetKind,
    pub error: String,
}

/// A target that was not run.
#[derive(Debug, Clone, Serialize)]
pub struct Skip {
    pub target: TargetKind,
    pub reason: String,
}

/// Warning and error lines a target logged over the whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Warnings {
    pub target: TargetKind,
    pub lines: u64,
    pub first: Vec<String>,
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub tool: &'static str,
    pub version: &'static str,
    pub date: String,
    pub git_commit: Option<String>,
    pub command_line: String,
    pub machine: Machine,
    pub plan: Plan,
    pub idle: Vec<IdleRow>,
    pub broadcast: Vec<LoadRow>,
    pub topics: Vec<LoadRow>,
    pub echo: Vec<EchoRow>,
    pub churn: Vec<ChurnRow>,
    pub soak: Vec<SoakRow>,
    pub fault: Vec<FaultRow>,
    pub streams: Vec<StreamRow>,
    pub streams_recovery: Vec<RecoveryRow>,
    pub consumers: Vec<ConsumerRow>,
    pub failures: Vec<Failure>,
    pub skipped: Vec<Skip>,
    pub warnings: Vec<Warnings>,
    pub checks: Vec<Check>,
    pub total_secs: f64,
}

/// `a / b` when both exist and b is not zero.
pub fn ratio(a: f64, b: Option<f64>) -> Option<f64> {
    b.filter(|b| *b > 0.0).map(|b| a / b)
}

impl Results {
    /// Adds to a target's warning tally.
    pub fn add_warnings(&mut self, target: TargetKind, lines: u64, first: Vec<String>) {
        match self.warnings.iter_mut().find(|w| w.target == target) {
            Some(w) => {
                w.lines += lines;
                for line in first {
                    if w.first.len() < 5 {
                        w.first.push(line);
                    }
                }
            }
            None => self.warnings.push(Warnings {
                target,
                lines,
                first,
            }),
        }
    }

    /// Fills every row's `vs_plain` / `vs_node`.
    pub fn compute_ratios(&mut self) {
        let idle = self.idle.clone();
        for row in &mut self.idle {
            let peer = |t: TargetKind| {
                idle.iter()
                    .find(|r| r.target == t && r.connections == row.connections)
                    .map(|r| r.per_conn_bytes)
            };
            row.vs_plain = ratio(row.per_conn_bytes, peer(TargetKind::Plain));
            row.vs_node = ratio(row.per_conn_bytes, peer(TargetKind::Node));
        }
        for rows in [&mut self.broadcast, &mut self.topics] {
            let all = rows.clone();
            for row in rows.iter_mut() {
                let figure = |r: &LoadRow| match r.phase {
                    Phase::Max | Phase::Backend => r.deliveries_per_s,
                    Phase::Fixed => r.latency.p99_us as f64,
                };
                let peer = |t: TargetKind| {
                    all.iter()
                        .find(|r| r.target == t && r.phase == row.phase)
                        .map(figure)
                };
                row.vs_plain = ratio(figure(row), peer(TargetKind::Plain));
                row.vs_node = ratio(figure(row), peer(TargetKind::Node));
            }
        }
        let echo = self.echo.clone();
        for row in &mut self.echo {
            let peer = |t: TargetKind| {
                echo.iter()
                    .find(|r| r.target == t && r.in_flight == row.in_flight)
                    .map(|r| r.round_trips_per_s)
            };
            row.vs_plain = ratio(row.round_trips_per_s, peer(TargetKind::Plain));
            row.vs_node = ratio(row.round_trips_per_s, peer(TargetKind::Node));
        }
        let off = self
            .streams
            .iter()
            .find(|r| r.history == StreamHistory::Off)
            .and_then(|r| r.load.as_ref())
            .map(|l| l.deliveries_per_s);
        for row in &mut self.streams {
            row.vs_off = row
                .load
                .as_ref()
                .and_then(|l| ratio(l.deliveries_per_s, off));
        }
        let http = self
            .consumers
            .iter()
            .find(|r| r.source == ConsumerSource::Http)
            .and_then(|r| r.load.as_ref())
            .map(|l| l.deliveries_per_s);
        for row in &mut self.consumers {
            row.vs_http = row
                .load
                .as_ref()
                .and_then(|l| ratio(l.deliveries_per_s, http));
        }
        let churn = self.churn.clone();
        for row in &mut self.churn {
            let peer = |t: TargetKind| {
                churn
                    .iter()
                    .find(|r| r.target == t)
                    .map(|r| r.handshakes_per_s)
            };
            row.vs_plain = ratio(row.handshakes_per_s, peer(TargetKind::Plain));
            row.vs_node = ratio(row.handshakes_per_s, peer(TargetKind::Node));
        }
    }
}
