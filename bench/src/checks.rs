//! The targets wsgate is held to, checked against a run's figures: PASS, FAIL, or n/a when
//! the run did not measure what the target needs.
//!
//! The targets are stated for the full run (18,000 idle connections, 10,000 broadcast clients,
//! 1,000,000 deliveries/s fixed rate); a run with other settings is still checked, with a note
//! saying under which conditions, so a smoke run's table is never mistaken for the real one.

use crate::publisher::Route;
use crate::results::{ConsumerSource, LoadRow, Phase, Results, StreamHistory};
use crate::target::TargetKind;
use crate::verdict::{Check, Verdict};

/// The idle memory target, bytes per connection.
const IDLE_MAX_BYTES: f64 = 4.0 * 1024.0;
/// The connection count the idle target is stated for.
const IDLE_AT: usize = 18_000;
/// Broadcast deliveries per second wsgate must reach.
const BROADCAST_MIN: f64 = 1_600_000.0;
/// Clients the broadcast target is stated for.
const BROADCAST_CLIENTS: usize = 10_000;
/// The fixed rate the latency target is stated for.
const LATENCY_RATE: u64 = 1_000_000;
/// Share of the fixed phase's scheduled messages that must be sent.
const FIXED_MIN_SENT: f64 = 0.99;
/// wsgate's p99 at the fixed rate, at most this times the plain hub's.
const FIXED_P99_FACTOR: f64 = 0.8;
/// Echo round trips per second wsgate must reach.
const ECHO_MIN: f64 = 150_000.0;
/// Echo with acks on, against the same depth with them off (issue 13: a cost of at most 10 %).
const ACKS_MIN_RATIO: f64 = 0.9;
/// Publish throughput with stream history in memory, against the same with history off.
const STREAMS_MIN_RATIO: f64 = 0.8;
/// A consumer's deliveries per second against the HTTP route's, in the same run: reported as
/// PASS or FAIL, but a run never fails on it (only measurements that could not be made do).
const CONSUMERS_MIN_RATIO: f64 = 0.5;
/// How far the soak's resident memory may move after warm-up, in percent.
const SOAK_MAX_DRIFT_PCT: f64 = 5.0;
/// Open files the churn workers may hold at a sample beyond the warm-up's (sockets mid-cycle).
const SOAK_FD_SLACK: u64 = 64;

fn check(target: &str, measured: String, verdict: Verdict, note: String) -> Check {
    Check {
        target: target.to_owned(),
        measured,
        verdict,
        note,
    }
}

/// The share of a fixed-rate phase's scheduled messages that were sent (1 for other phases).
fn sent_share(r: &LoadRow) -> f64 {
    match r.requested_rate {
        Some(rate) if rate > 0 && r.fanout > 0 && r.seconds > 0.0 => {
            let scheduled = rate as f64 / r.fanout as f64 * r.seconds;
            (r.published as f64 / scheduled).min(1.0)
        }
        _ => 1.0,
    }
}

fn missing(target: &str, why: &str) -> Check {
    check(target, "-".into(), Verdict::NotMeasured, why.to_owned())
}

fn load_row(rows: &[LoadRow], target: TargetKind, route: Route, phase: Phase) -> Option<&LoadRow> {
    rows.iter()
        .find(|r| r.target == target && r.route == route && r.phase == phase)
}

fn clients_note(row: &LoadRow) -> String {
    if row.clients == BROADCAST_CLIENTS {
        String::new()
    } else {
        format!(
            "measured with {} clients (target: {BROADCAST_CLIENTS})",
            row.clients
        )
    }
}

/// Every target, checked against `results`.
pub fn evaluate(results: &Results) -> Vec<Check> {
    let mut out = Vec::new();

    // Idle memory: at the largest count measured, ideally 18,000.
    let at = results
        .idle
        .iter()
        .filter(|r| r.target == TargetKind::Wsgate)
        .map(|r| r.connections)
        .max();
    let idle = |t: TargetKind, n: usize| {
        results
            .idle
            .iter()
            .find(|r| r.target == t && r.connections == n)
    };
    let name = "idle: wsgate RSS per connection ≤ 4 KiB at 18,000 connections";
    match at.and_then(|n| idle(TargetKind::Wsgate, n)) {
        Some(w) => {
            let note = if w.connections == IDLE_AT {
                String::new()
            } else {
                format!("measured at {} connections", w.connections)
            };
            out.push(check(
                name,
                format!("{:.2} KiB", w.per_conn_kib),
                Verdict::of(w.per_conn_bytes <= IDLE_MAX_BYTES),
                note,
            ));
            let name = "idle: wsgate RSS per connection below node's";
            match idle(TargetKind::Node, w.connections) {
                Some(n) => out.push(check(
                    name,
                    format!("{:.2} vs {:.2} KiB", w.per_conn_kib, n.per_conn_kib),
                    Verdict::of(w.per_conn_bytes < n.per_conn_bytes),
                    format!("at {} connections", w.connections),
                )),
                None => out.push(missing(name, "node was not measured")),
            }
        }
        None => {
            out.push(missing(name, "idle was not run for wsgate"));
            out.push(missing(
                "idle: wsgate RSS per connection below node's",
                "idle was not run for wsgate",
            ));
        }
    }

    // Broadcast throughput.
    let rows = &results.broadcast;
    let sdk = load_row(rows, TargetKind::Wsgate, Route::Sdk, Phase::Max);
    for (route, name) in [
        (
            Route::Sdk,
            "broadcast via SDK ≥ 1,600,000 deliveries/s to 10,000 clients",
        ),
        (
            Route::WsgateHttp,
            "broadcast via HTTP API ≥ 1,600,000 deliveries/s to 10,000 clients",
        ),
    ] {
        match load_row(rows, TargetKind::Wsgate, route, Phase::Max) {
            Some(r) => out.push(check(
                name,
                format!("{:.0}/s", r.deliveries_per_s),
                Verdict::of(r.deliveries_per_s >= BROADCAST_MIN),
                clients_note(r),
            )),
            None => out.push(missing(name, "not measured")),
        }
    }
    for (peer, factor, name) in [
        (TargetKind::Plain, 0.8, "broadcast via SDK ≥ 0.8× plain"),
        (TargetKind::Node, 20.0, "broadcast via SDK ≥ 20× node"),
    ] {
        match (sdk, load_row(rows, peer, Route::PeerHttp, Phase::Max)) {
            (Some(w), Some(p)) if p.deliveries_per_s > 0.0 => {
                let x = w.deliveries_per_s / p.deliveries_per_s;
                out.push(check(
                    name,
                    format!("{x:.2}×"),
                    Verdict::of(x >= factor),
                    clients_note(w),
                ));
            }
            _ => out.push(missing(name, &format!("wsgate or {peer} not measured"))),
        }
    }

    // What a backend sees: the backend phase against the plain hub's max throughput, and the
    // publish round trip through the HTTP API.
    let plain_max = load_row(rows, TargetKind::Plain, Route::PeerHttp, Phase::Max);
    for (route, factor) in [
        (Route::WsgateHttp, 1.0),
        (Route::WsgateGrpc, 1.0),
        (Route::Sdk, 1.2),
    ] {
        let name = format!(
            "backend broadcast via {} ≥ {factor:.1}× plain's max",
            route.title()
        );
        match (
            load_row(rows, TargetKind::Wsgate, route, Phase::Backend),
            plain_max,
        ) {
            (Some(w), Some(p)) if p.deliveries_per_s > 0.0 => {
                let x = w.deliveries_per_s / p.deliveries_per_s;
                out.push(check(
                    &name,
                    format!("{x:.2}× ({:.0}/s)", w.deliveries_per_s),
                    Verdict::of(x >= factor),
                    format!("{} publishers; {}", w.publishers, clients_note(w)),
                ));
            }
            _ => out.push(missing(&name, "wsgate or plain not measured")),
        }
    }
    // The publisher's at-least-once machinery (command ids, retries) costs at most a tenth.
    // Receipts are measured beside them, without a target: BENCHMARKS.md says what they cost.
    for phase in [Phase::Max, Phase::Backend] {
        let name = format!(
            "broadcast via SDK with command ids ≥ {ACKS_MIN_RATIO}× without ({})",
            phase.label()
        );
        match (
            load_row(rows, TargetKind::Wsgate, Route::Sdk, phase),
            load_row(rows, TargetKind::Wsgate, Route::SdkNoIds, phase),
        ) {
            (Some(r), Some(s)) if s.deliveries_per_s > 0.0 => {
                let x = r.deliveries_per_s / s.deliveries_per_s;
                out.push(check(
                    &name,
                    format!(
                        "{x:.2}× ({:.0} vs {:.0}/s)",
                        r.deliveries_per_s, s.deliveries_per_s
                    ),
                    Verdict::of(x >= ACKS_MIN_RATIO),
                    "the SDK's defaults against retries(false)".to_owned(),
                ));
            }
            _ => out.push(missing(
                &name,
                "SDK with or without command ids not measured",
            )),
        }
    }
    let name = "backend publish round trip via HTTP API p50 ≤ 10 ms";
    match load_row(rows, TargetKind::Wsgate, Route::WsgateHttp, Phase::Backend) {
        Some(r) => out.push(check(
            name,
            format!(
                "p50 {:.1} ms, p99 {:.1} ms",
                r.round_trip.p50_us as f64 / 1000.0,
                r.round_trip.p99_us as f64 / 1000.0
            ),
            Verdict::of(r.round_trip.samples > 0 && r.round_trip.p50_us <= 10_000),
            format!(
                "during the backend phase's fan-out ({:.0} deliveries/s)",
                r.deliveries_per_s
            ),
        )),
        None => out.push(missing(name, "not measured")),
    }

    // The fixed rate, on every route: (nearly) every scheduled message sent, and latency below
    // the plain hub's at the same rate.
    let plain_fixed = load_row(rows, TargetKind::Plain, Route::PeerHttp, Phase::Fixed);
    for route in [Route::Sdk, Route::WsgateHttp, Route::WsgateGrpc] {
        let name = format!(
            "broadcast at 1,000,000 deliveries/s via {}: ≥ {:.0} % sent, p99 ≤ {FIXED_P99_FACTOR}× plain's",
            route.title(),
            FIXED_MIN_SENT * 100.0
        );
        match (
            load_row(rows, TargetKind::Wsgate, route, Phase::Fixed),
            plain_fixed,
        ) {
            (Some(w), Some(p)) => {
                let sent = sent_share(w);
                let mut notes = vec![clients_note(w)];
                if w.requested_rate != Some(LATENCY_RATE) {
                    notes.push(format!(
                        "measured at {} deliveries/s",
                        w.requested_rate.unwrap_or(0)
                    ));
                }
                if sent_share(p) < FIXED_MIN_SENT {
                    notes.push(format!(
                        "plain sent only {:.1} % of its schedule",
                        sent_share(p) * 100.0
                    ));
                }
                let note = notes
                    .into_iter()
                    .filter(|n| !n.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ");
                let p99_ok = w.latency.p99_us as f64 <= p.latency.p99_us as f64 * FIXED_P99_FACTOR;
                out.push(check(
                    &name,
                    format!(
                        "{:.1} % sent; p99 {} vs {} µs ({:.2}×)",
                        sent * 100.0,
                        w.latency.p99_us,
                        p.latency.p99_us,
                        w.latency.p99_us as f64 / (p.latency.p99_us.max(1)) as f64
                    ),
                    Verdict::of(sent >= FIXED_MIN_SENT && p99_ok),
                    note,
                ));
            }
            _ => out.push(missing(&name, "wsgate or plain not measured")),
        }
    }

    // Echo.
    let name = "echo through a business process ≥ 150,000 round trips/s";
    // At the most messages in flight measured: the chattiest client the run tried.
    match results
        .echo
        .iter()
        .filter(|r| r.target == TargetKind::Wsgate && !r.acks)
        .max_by_key(|r| r.in_flight)
    {
        Some(r) => out.push(check(
            name,
            format!("{:.0}/s", r.round_trips_per_s),
            Verdict::of(r.round_trips_per_s >= ECHO_MIN),
            format!("wsgate, {} in flight; {} clients", r.in_flight, r.clients),
        )),
        None => out.push(missing(name, "not measured")),
    }

    // At-least-once events cost at most a tenth of the echo throughput, at every depth.
    for acked in results
        .echo
        .iter()
        .filter(|r| r.target == TargetKind::Wsgate && r.acks)
    {
        let name = format!(
            "echo with acks ≥ {ACKS_MIN_RATIO}× without, {} in flight",
            acked.in_flight
        );
        let plain = results
            .echo
            .iter()
            .find(|r| r.target == TargetKind::Wsgate && !r.acks && r.in_flight == acked.in_flight);
        match plain {
            Some(p) if p.round_trips_per_s > 0.0 => {
                let ratio = acked.round_trips_per_s / p.round_trips_per_s;
                out.push(check(
                    &name,
                    format!(
                        "{ratio:.2}× ({:.0} vs {:.0}/s)",
                        acked.round_trips_per_s, p.round_trips_per_s
                    ),
                    Verdict::of(ratio >= ACKS_MIN_RATIO),
                    "the same business process, registered with acks".to_owned(),
                ));
            }
            _ => out.push(missing(&name, "echo without acks not measured")),
        }
    }

    // Fault: with acks, a killed or hung business process loses no client message.
    let name = "fault: no message lost when a business process is killed or hangs (acks)";
    if results.fault.is_empty() {
        out.push(missing(name, "fault was not run for wsgate"));
    } else {
        let rows = &results.fault;
        let lost: u64 = rows.iter().map(|r| r.lost).sum();
        let sent: u64 = rows.iter().map(|r| r.sent).sum();
        let per = rows
            .iter()
            .map(|r| format!("{} {}", r.fault.label(), r.lost))
            .collect::<Vec<_>>()
            .join(", ");
        let takeover = rows
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    r.fault.label(),
                    r.takeover_ms
                        .map_or_else(|| "never".to_owned(), |t| format!("{t:.0} ms"))
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        out.push(check(
            name,
            format!("{lost} of {sent} lost ({per})"),
            Verdict::of(lost == 0 && sent > 0),
            format!(
                "takeover {takeover}; ack timeout {:.1} s; {} clients",
                rows[0].ack_timeout_secs, rows[0].clients
            ),
        ));
    }

    streams(results, &mut out);
    // Only when asked for (it is not in the default list: it needs brokers).
    if !results.consumers.is_empty() {
        consumers(results, &mut out);
    }

    // Soak: only when asked for (it is not in the default list).
    if let Some(r) = results.soak.first() {
        out.push(check(
            "soak: wsgate RSS within ±5 % after warm-up, open files flat, 0 errors",
            format!(
                "{:+.1} % ({:.1} -> {:.1} MiB), open files {} -> {}, {} errors",
                r.rss_drift_pct,
                r.rss_after_warmup as f64 / 1048576.0,
                r.rss_end as f64 / 1048576.0,
                r.open_files_after_warmup,
                r.open_files_end,
                r.errors
            ),
            Verdict::of(
                r.rss_drift_pct.abs() <= SOAK_MAX_DRIFT_PCT
                    && r.errors == 0
                    && r.open_files_end <= r.open_files_after_warmup + SOAK_FD_SLACK,
            ),
            format!(
                "{:.0} s, {} steady clients, {} churn workers; warm-up {:.0} s",
                r.seconds, r.clients, r.churn_workers, r.warmup_secs
            ),
        ));
    }
    out
}

/// Streams: history in memory costs at most a fifth of the publish throughput (the Redis
/// engine's ratio is reported beside it, without a threshold), and every client of a reconnect
/// storm recovers what it missed.
fn streams(results: &Results, out: &mut Vec<Check>) {
    let row = |h: StreamHistory| results.streams.iter().find(|r| r.history == h);
    let load = |h: StreamHistory| row(h).and_then(|r| r.load.as_ref());
    let name = format!("streams: history on (memory) ≥ {STREAMS_MIN_RATIO}× history off");
    match (load(StreamHistory::Memory), load(StreamHistory::Off)) {
        (Some(memory), Some(off)) if off.deliveries_per_s > 0.0 => {
            let x = memory.deliveries_per_s / off.deliveries_per_s;
            let redis = match (row(StreamHistory::Redis), load(StreamHistory::Redis)) {
                (_, Some(r)) => format!(
                    "Redis: {:.2}× ({:.0}/s), no threshold",
                    r.deliveries_per_s / off.deliveries_per_s,
                    r.deliveries_per_s
                ),
                (Some(r), None) => {
                    format!("Redis: {}", r.skipped.as_deref().unwrap_or("not measured"))
                }
                (None, None) => "Redis: not measured".to_owned(),
            };
            out.push(check(
                &name,
                format!(
                    "{x:.2}× ({:.0} vs {:.0}/s)",
                    memory.deliveries_per_s, off.deliveries_per_s
                ),
                Verdict::of(x >= STREAMS_MIN_RATIO),
                format!("{} clients in one topic; {redis}", memory.clients),
            ));
        }
        _ if results.streams.is_empty() => out.push(missing(&name, "streams was not run")),
        _ => out.push(missing(&name, "history off or on (memory) not measured")),
    }
    for history in [StreamHistory::Memory, StreamHistory::Redis] {
        let engine = match history {
            StreamHistory::Redis => "Redis",
            _ => "memory",
        };
        let name = format!("streams: every client of a reconnect storm recovered ({engine})");
        match results
            .streams_recovery
            .iter()
            .find(|r| r.history == history)
        {
            Some(r) if r.skipped.is_none() => out.push(check(
                &name,
                format!(
                    "{} of {} not recovered; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                    r.not_recovered,
                    r.clients,
                    r.time.p50_us as f64 / 1000.0,
                    r.time.p99_us as f64 / 1000.0,
                    r.time.max_us as f64 / 1000.0
                ),
                Verdict::of(r.not_recovered == 0 && r.recovered == r.clients),
                format!(
                    "{} publications missed each; {}",
                    r.missed,
                    r.reasons
                        .first()
                        .map_or_else(|| "all replayed in order".to_owned(), Clone::clone)
                ),
            )),
            Some(r) => out.push(missing(&name, r.skipped.as_deref().unwrap_or_default())),
            None => out.push(missing(&name, "not measured")),
        }
    }
}

/// Consumers: each broker route against the HTTP route of the same run and gateway.
fn consumers(results: &Results, out: &mut Vec<Check>) {
    let row = |s: ConsumerSource| results.consumers.iter().find(|r| r.source == s);
    let http = row(ConsumerSource::Http).and_then(|r| r.load.as_ref());
    for source in [ConsumerSource::Rabbitmq, ConsumerSource::RedisList] {
        let name = format!(
            "consumers: {} ≥ {CONSUMERS_MIN_RATIO}× the HTTP route (informative)",
            source.label()
        );
        match (row(source), http) {
            (Some(r), Some(h)) if h.deliveries_per_s > 0.0 && r.load.is_some() => {
                let Some(l) = r.load.as_ref() else { continue };
                let x = l.deliveries_per_s / h.deliveries_per_s;
                out.push(check(
                    &name,
                    format!(
                        "{x:.2}× ({:.0} vs {:.0} deliveries/s)",
                        l.deliveries_per_s, h.deliveries_per_s
                    ),
                    Verdict::of(x >= CONSUMERS_MIN_RATIO),
                    format!(
                        "{:.0} vs {:.0} messages/s to {} clients; a run does not fail on it",
                        l.deliveries_per_s / l.fanout.max(1) as f64,
                        h.deliveries_per_s / h.fanout.max(1) as f64,
                        l.clients
                    ),
                ));
            }
            (Some(r), _) if r.skipped.is_some() => {
                out.push(missing(&name, r.skipped.as_deref().unwrap_or_default()));
            }
            _ => out.push(missing(&name, "it or the HTTP route not measured")),
        }
    }
}
