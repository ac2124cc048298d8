//! Scenario 3, topics: many topics with a few subscribers each, messages published to random
//! topics as fast as the target sustains (closed loop).
//!
//! Client `i` subscribes to topic `t{i % topics}` with `?topic=` on its URL. The peers read it
//! themselves; for wsgate a business process in the bench subscribes each connection on its
//! `ConnOpen` (as a real deployment would, or the authorize hook would), and publishing waits
//! until every subscription is confirmed.

use std::sync::Arc;
use std::time::Duration;

use crate::business::{Registered, Role, Tally};
use crate::cli::Scenario;
use crate::client::Behaviour;
use crate::error::BenchError;
use crate::fleet::{self, FleetSpec};
use crate::publisher::{Action, Route};
use crate::results::{LoadRow, Phase, Results};
use crate::target::TargetKind;

use super::{Ctx, LoadPhase, failed, wait_until};

pub async fn run(ctx: &Ctx, results: &mut Results) {
    let (topics, subs) = (ctx.plan.topics, ctx.plan.subscribers);
    let m = ctx.plan.topic_clients();
    ctx.progress.say(format!(
        "== topics: {topics} topics × {subs} subscribers = {m} clients, publishing to random topics"
    ));
    for &kind in &ctx.targets {
        match one(ctx, results, kind).await {
            Ok(row) => results.topics.push(row),
            Err(e) => failed(ctx, results, Scenario::Topics, kind, &e),
        }
    }
}

async fn one(ctx: &Ctx, results: &mut Results, kind: TargetKind) -> Result<LoadRow, BenchError> {
    let (topics, subs) = (ctx.plan.topics, ctx.plan.subscribers);
    let m = ctx.plan.topic_clients();
    ctx.check_clients("topics", m)?;
    ctx.measure(kind, results, async |target| {
        // wsgate: the subscriber must be registered before the clients open.
        let tally = Arc::new(Tally::default());
        let sdk: Option<Registered> = match kind {
            TargetKind::Wsgate => Some(
                ctx.business(target, Role::Subscriber, tally.clone())
                    .await?,
            ),
            TargetKind::Plain | TargetKind::Node => None,
        };
        let fleet = fleet::connect(
            FleetSpec {
                label: format!("topics {kind}"),
                target: kind.to_string(),
                count: m,
                server: target.ws,
                path: {
                    let base = target.client_path("");
                    Arc::new(move |i| format!("{base}?topic=t{}", i % topics))
                },
                behaviour: Behaviour::Receive,
                source_addrs: ctx.plan.source_addrs,
                concurrency: ctx.plan.connect_concurrency,
            },
            &ctx.progress,
        )
        .await?;
        if sdk.is_some() {
            wait_until(
                format!("the bench business process to subscribe {m} connections"),
                Duration::from_secs(60),
                async || {
                    if tally.failed() > 0 {
                        return Err(BenchError::Driver {
                            what: "the bench's topics business process".into(),
                            reason: tally.first_error().unwrap_or_default(),
                        });
                    }
                    Ok(tally.done() >= m as u64)
                },
            )
            .await?;
        }
        let route = if sdk.is_some() {
            Route::Sdk
        } else {
            Route::PeerHttp
        };
        let row = LoadPhase {
            ctx,
            target,
            fleet: &fleet,
            route,
            sdk: sdk.as_ref().map(|r| &r.client),
            broker: None,
            action: Action::Publish { topics },
            fanout: subs,
            phase: Phase::Max,
            label: format!("topics {kind}-{}", route.label()),
        }
        .run()
        .await?;
        drop(sdk);
        fleet.close().await;
        Ok(row)
    })
    .await
}
