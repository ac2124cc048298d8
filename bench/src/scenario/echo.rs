//! Scenario 4, echo: every client keeps N stamped messages in flight, sending another for each
//! that comes back (1 = ping-pong); round trips per second and round-trip latency. One phase per
//! value of `--echo-in-flight` (e.g. 1,8), each on a freshly started target, so no phase
//! inherits another's state.
//!
//! wsgate answers through a business process in the bench that single-casts each message back
//! to its sender, fire-and-forget (`Client::post`), so the figure includes the worker link
//! both ways; each value is measured twice, the second time with the process registered with
//! acks (every event acknowledged once received), so the cost of at-least-once events is
//! measured in the same run. The peers echo in the hub itself: they are the floor, not a
//! like-for-like.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::business::{Registered, Role, Tally};
use crate::cli::Scenario;
use crate::client::Behaviour;
use crate::error::BenchError;
use crate::fleet::{self, FleetSpec};
use crate::progress::si;
use crate::results::{EchoRow, Failure, Results};
use crate::target::TargetKind;

use super::Ctx;

pub async fn run(ctx: &Ctx, results: &mut Results) {
    let values: Vec<String> = ctx
        .plan
        .echo_in_flight
        .iter()
        .map(usize::to_string)
        .collect();
    ctx.progress.say(format!(
        "== echo: {} clients; messages in flight per client: {}",
        ctx.plan.echo_clients,
        values.join(", ")
    ));
    for &kind in &ctx.targets {
        let acks: &[bool] = match kind {
            TargetKind::Wsgate => &[false, true],
            TargetKind::Plain | TargetKind::Node => &[false],
        };
        for &in_flight in &ctx.plan.echo_in_flight {
            for &acks in acks {
                let what = format!("{in_flight} in flight{}", if acks { ", acks" } else { "" });
                match one(ctx, results, kind, in_flight, acks).await {
                    Ok(row) => results.echo.push(row),
                    Err(e) => {
                        ctx.progress
                            .say(format!("  echo {kind}, {what} FAILED: {e}"));
                        results.failures.push(Failure {
                            scenario: Scenario::Echo,
                            target: kind,
                            error: format!("{what}: {e}"),
                        });
                    }
                }
            }
        }
    }
}

async fn one(
    ctx: &Ctx,
    results: &mut Results,
    kind: TargetKind,
    in_flight: usize,
    acks: bool,
) -> Result<EchoRow, BenchError> {
    let n = ctx.plan.echo_clients;
    ctx.check_clients("echo", n)?;
    ctx.measure(kind, results, async |target| {
        let tally = Arc::new(Tally::default());
        let business: Option<Registered> = match kind {
            TargetKind::Wsgate => {
                let role = if acks { Role::EchoAcked } else { Role::Echo };
                Some(ctx.business(target, role, tally.clone()).await?)
            }
            TargetKind::Plain | TargetKind::Node => None,
        };
        let (go, start) = watch::channel(false);
        let fleet = fleet::connect(
            FleetSpec {
                label: format!("echo {kind}, {in_flight} in flight{}", acks_label(acks)),
                target: kind.to_string(),
                count: n,
                server: target.ws,
                path: fleet::same_path(target.client_path("")),
                behaviour: Behaviour::Echo(start, in_flight),
                source_addrs: ctx.plan.source_addrs,
                concurrency: ctx.plan.connect_concurrency,
            },
            &ctx.progress,
        )
        .await?;
        let recorder = fleet.recorder.clone();
        let label = format!("echo {kind}, {in_flight} in flight{}", acks_label(acks));
        {
            let (recorder, label) = (recorder.clone(), label.clone());
            let begin = Instant::now();
            let mut last = (Instant::now(), 0u64);
            ctx.progress.show(move || {
                let now = Instant::now();
                let d = recorder.delivered();
                let secs = now.duration_since(last.0).as_secs_f64().max(1e-3);
                let line = format!(
                    "{label}: {:.0}s  round trips {}/s",
                    begin.elapsed().as_secs_f64(),
                    si((d - last.1) as f64 / secs)
                );
                last = (now, d);
                line
            });
        }
        let _ = go.send(true);
        tokio::time::sleep(ctx.plan.warmup).await;
        recorder.reset_latencies();
        recorder.set_recording(true);
        let lost_before = recorder.closed_by_server();
        let (d0, t0) = (recorder.delivered(), Instant::now());
        tokio::time::sleep(ctx.plan.duration).await;
        let (d1, seconds) = (recorder.delivered(), t0.elapsed().as_secs_f64());
        recorder.set_recording(false);
        ctx.progress.clear();
        let row = EchoRow {
            target: kind,
            via: match (business.is_some(), acks) {
                (true, false) => "business",
                (true, true) => "business, acks",
                (false, _) => "native",
            },
            acks,
            clients: n,
            in_flight,
            seconds,
            round_trips: d1 - d0,
            round_trips_per_s: (d1 - d0) as f64 / seconds,
            latency: recorder.latencies(),
            clients_lost: recorder.closed_by_server() - lost_before,
            business_errors: tally.failed(),
            first_error: tally.first_error().or_else(|| recorder.first_end()),
            vs_plain: None,
            vs_node: None,
        };
        fleet.close().await;
        drop(business);
        ctx.progress.say(format!(
            "  {label}: {} round trips/s, p50 {} µs, p99 {} µs, p99.9 {} µs",
            si(row.round_trips_per_s),
            row.latency.p50_us,
            row.latency.p99_us,
            row.latency.p999_us
        ));
        Ok(row)
    })
    .await
}

fn acks_label(acks: bool) -> &'static str {
    if acks { ", acks" } else { "" }
}
