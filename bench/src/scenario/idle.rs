//! Scenario 1, idle: hold N connections; the target's resident memory per connection and the
//! connect rate.
//!
//! Per target and N: a fresh process, 1 s to settle, its VmRSS as the baseline; N clients
//! connect; once the target reports holding them and 1 s more, VmRSS again. Per connection =
//! (after - baseline) / N. wsgate runs without a business process here: connections need
//! none, and a business link would add its own buffers to the figure.

use std::time::{Duration, Instant};

use crate::cli::Scenario;
use crate::client::Behaviour;
use crate::error::BenchError;
use crate::fleet::{self, FleetSpec};
use crate::progress::si;
use crate::results::{IdleRow, Results};
use crate::target::TargetKind;

use super::{Ctx, failed, wait_until};

/// Time for the process to settle before each reading.
const SETTLE: Duration = Duration::from_secs(1);

pub async fn run(ctx: &Ctx, results: &mut Results) {
    ctx.progress
        .say("== idle: memory per connection and connect rate");
    for &kind in &ctx.targets {
        for &n in &ctx.plan.idle_counts {
            match one(ctx, results, kind, n).await {
                Ok(row) => {
                    ctx.progress.say(format!(
                        "  idle {kind} {n}: {:.2} KiB/connection (RSS {:.1} -> {:.1} MiB), {} connects/s",
                        row.per_conn_kib,
                        row.baseline_rss_bytes as f64 / 1048576.0,
                        row.rss_bytes as f64 / 1048576.0,
                        si(row.connects_per_s)
                    ));
                    results.idle.push(row);
                }
                Err(e) => failed(ctx, results, Scenario::Idle, kind, &e),
            }
        }
    }
}

async fn one(
    ctx: &Ctx,
    results: &mut Results,
    kind: TargetKind,
    n: usize,
) -> Result<IdleRow, BenchError> {
    ctx.check_clients("idle", n)?;
    ctx.measure(kind, results, async |target| {
        tokio::time::sleep(SETTLE).await;
        let baseline = target.rss_bytes()?;
        let fleet = fleet::connect(
            FleetSpec {
                label: format!("idle {kind} {n}"),
                target: kind.to_string(),
                count: n,
                server: target.ws,
                path: fleet::same_path(target.client_path("")),
                behaviour: Behaviour::Receive,
                source_addrs: ctx.plan.source_addrs,
                concurrency: ctx.plan.connect_concurrency,
            },
            &ctx.progress,
        )
        .await?;
        let counted = Instant::now();
        let mut reported = 0;
        wait_until(
            format!("{kind} to report {n} connections"),
            Duration::from_secs(30),
            async || {
                reported = target.connections().await?;
                Ok(reported >= n as u64)
            },
        )
        .await?;
        tokio::time::sleep(SETTLE.saturating_sub(counted.elapsed())).await;
        let rss = target.rss_bytes()?;
        let alive = fleet.recorder.alive();
        let lost = fleet.recorder.first_end();
        let row = IdleRow {
            target: kind,
            connections: n,
            server_reported: reported,
            connect_secs: fleet.connect_secs,
            connects_per_s: fleet.connect_rate(),
            baseline_rss_bytes: baseline,
            rss_bytes: rss,
            per_conn_bytes: rss.saturating_sub(baseline) as f64 / n as f64,
            per_conn_kib: rss.saturating_sub(baseline) as f64 / n as f64 / 1024.0,
            vs_plain: None,
            vs_node: None,
        };
        fleet.close().await;
        if alive < n {
            return Err(BenchError::Target {
                target: kind.to_string(),
                reason: format!(
                    "closed {} of {n} idle connections: {}",
                    n - alive,
                    lost.unwrap_or_default()
                ),
            });
        }
        Ok(row)
    })
    .await
}
