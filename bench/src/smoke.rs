//! What a `--smoke` run must show: for every target and scenario, that the traffic actually
//! arrived (connections held, messages delivered, round trips and handshakes completed), that
//! the fault scenario lost no message, that every streams client recovered, and (when named)
//! that every consumers source whose broker answered delivered. Speeds are not checked: CI
//! machines and debug builds vary too much for that.

use crate::cli::{Plan, Scenario};
use crate::results::{ConsumerSource, Results, StreamHistory};
use crate::scenario::broadcast;
use crate::target::TargetKind;

/// Everything a smoke run failed to show; empty when it passed.
pub fn problems(plan: &Plan, targets: &[TargetKind], results: &Results) -> Vec<String> {
    let mut out: Vec<String> = results
        .failures
        .iter()
        .map(|f| format!("{} failed for {}: {}", f.scenario.name(), f.target, f.error))
        .collect();
    for &t in targets {
        for &s in &plan.scenarios {
            match s {
                Scenario::Idle => {
                    for &n in &plan.idle_counts {
                        match results
                            .idle
                            .iter()
                            .find(|r| r.target == t && r.connections == n)
                        {
                            Some(r) if r.server_reported >= n as u64 => {}
                            Some(r) => out.push(format!(
                                "idle {t}: the target reported {} of {n} connections",
                                r.server_reported
                            )),
                            None => out.push(format!("idle {t} {n}: no result")),
                        }
                    }
                }
                Scenario::Broadcast => {
                    for &route in broadcast::routes(t) {
                        for phase in broadcast::PHASES {
                            let row = results
                                .broadcast
                                .iter()
                                .find(|r| r.target == t && r.route == route && r.phase == phase);
                            match row {
                                Some(r) if r.deliveries > 0 => {}
                                _ => out.push(format!(
                                    "broadcast {t} {} {}: no message arrived",
                                    route.label(),
                                    phase.label()
                                )),
                            }
                        }
                    }
                }
                Scenario::Topics => match results.topics.iter().find(|r| r.target == t) {
                    Some(r) if r.deliveries > 0 => {}
                    _ => out.push(format!("topics {t}: no message arrived")),
                },
                Scenario::Echo => {
                    // wsgate is measured with and without acks.
                    let acks: &[bool] = match t {
                        TargetKind::Wsgate => &[false, true],
                        _ => &[false],
                    };
                    for &n in &plan.echo_in_flight {
                        for &acked in acks {
                            match results
                                .echo
                                .iter()
                                .find(|r| r.target == t && r.in_flight == n && r.acks == acked)
                            {
                                Some(r) if r.round_trips > 0 => {}
                                _ => out.push(format!(
                                    "echo {t}, {n} in flight{}: no round trip completed",
                                    if acked { ", acks" } else { "" }
                                )),
                            }
                        }
                    }
                }
                Scenario::Churn => match results.churn.iter().find(|r| r.target == t) {
                    Some(r) if r.handshakes > 0 => {}
                    _ => out.push(format!("churn {t}: no handshake completed")),
                },
                // wsgate only; there every message must have been answered after both faults.
                Scenario::Fault if t != TargetKind::Wsgate => {}
                Scenario::Fault => {
                    if results.fault.len() != 2 {
                        out.push(format!(
                            "fault wsgate: {} rows instead of one per fault",
                            results.fault.len()
                        ));
                    }
                    for r in &results.fault {
                        if r.answered == 0 || r.lost > 0 || r.takeover_ms.is_none() {
                            out.push(format!(
                                "fault wsgate, {}: {} sent, {} answered, {} lost, {} connections never answered after the fault",
                                r.fault.label(),
                                r.sent,
                                r.answered,
                                r.lost,
                                r.never_answered_after
                            ));
                        }
                    }
                }
                // wsgate only; every row not skipped (Redis may be absent) must have delivered
                // in order, and every reconnected client recovered.
                Scenario::Streams if t != TargetKind::Wsgate => {}
                Scenario::Streams => {
                    for history in [
                        StreamHistory::Off,
                        StreamHistory::Memory,
                        StreamHistory::Redis,
                    ] {
                        let label = history.label();
                        match results.streams.iter().find(|r| r.history == history) {
                            Some(r) if r.skipped.is_some() && history == StreamHistory::Redis => {}
                            Some(r) => match &r.load {
                                Some(l)
                                    if l.deliveries > 0
                                        && r.gaps == 0
                                        && r.duplicates == 0
                                        && r.bad_frames == 0 => {}
                                Some(l) => out.push(format!(
                                    "streams wsgate, {label}: {} deliveries, {} gaps, {} duplicates, {} bad frames ({})",
                                    l.deliveries,
                                    r.gaps,
                                    r.duplicates,
                                    r.bad_frames,
                                    r.first_bad.as_deref().unwrap_or("none")
                                )),
                                None => out.push(format!("streams wsgate, {label}: not measured")),
                            },
                            None => out.push(format!("streams wsgate, {label}: no result")),
                        }
                    }
                    for history in [StreamHistory::Memory, StreamHistory::Redis] {
                        let label = history.label();
                        match results
                            .streams_recovery
                            .iter()
                            .find(|r| r.history == history)
                        {
                            Some(r) if r.skipped.is_some() && history == StreamHistory::Redis => {}
                            Some(r)
                                if r.skipped.is_none()
                                    && r.recovered == r.clients
                                    && r.clients > 0 => {}
                            Some(r) => out.push(format!(
                                "streams wsgate, recovery {label}: {} of {} not recovered ({})",
                                r.not_recovered,
                                r.clients,
                                r.skipped
                                    .clone()
                                    .or_else(|| r.reasons.first().cloned())
                                    .unwrap_or_default()
                            )),
                            None => {
                                out.push(format!("streams wsgate, recovery {label}: no result"))
                            }
                        }
                    }
                }
                // wsgate only, and only when named (it needs brokers): every row not skipped
                // (a broker may be absent) must have delivered.
                Scenario::Consumers if t != TargetKind::Wsgate => {}
                Scenario::Consumers => {
                    for source in ConsumerSource::ALL {
                        let label = source.label();
                        match results.consumers.iter().find(|r| r.source == source) {
                            Some(r) if r.load.as_ref().is_some_and(|l| l.deliveries > 0) => {}
                            // Absent broker, or failed (then among the failures above).
                            Some(r) if r.skipped.is_some() && source != ConsumerSource::Http => {}
                            Some(_) => {
                                out.push(format!("consumers wsgate, {label}: no message arrived"))
                            }
                            None => out.push(format!("consumers wsgate, {label}: no result")),
                        }
                    }
                }
                // wsgate only; there it must have moved traffic, sampled, and seen no error.
                Scenario::Soak if t != TargetKind::Wsgate => {}
                Scenario::Soak => match results.soak.first() {
                    Some(r)
                        if r.messages > 0
                            && r.churn_cycles > 0
                            && r.errors == 0
                            && r.samples.len() >= 2 => {}
                    Some(r) => out.push(format!(
                        "soak wsgate: {} messages, {} churn cycles, {} samples, {} errors ({})",
                        r.messages,
                        r.churn_cycles,
                        r.samples.len(),
                        r.errors,
                        r.first_error.as_deref().unwrap_or("none")
                    )),
                    None => out.push("soak wsgate: no result".into()),
                },
            }
        }
    }
    out
}
