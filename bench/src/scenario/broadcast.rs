//! Scenario 2, broadcast: M clients, one publisher sending 100-byte messages to all of them.
//!
//! Routes: wsgate through the SDK (as it comes: command ids on; without them; with receipts for
//! every broadcast), the HTTP API and the gRPC API, each peer through its own
//! `POST /broadcast`. Each route gets a fresh target and fresh clients, then three phases: max
//! throughput (closed loop, nobody needs to drop), backend (a few publishers, each sending as
//! soon as its last request is answered: what a PHP or Java backend gets) and a fixed rate
//! (latency under a known load). Deliveries are counted at the clients; latency comes from the
//! stamp in each message, the publish round trip from each request.

use std::sync::Arc;

use crate::business::{Registered, Role};
use crate::cli::Scenario;
use crate::client::Behaviour;
use crate::error::BenchError;
use crate::fleet::{self, FleetSpec};
use crate::publisher::{Action, Route};
use crate::results::{LoadRow, Phase, Results};
use crate::target::TargetKind;

use super::{Ctx, LoadPhase, failed};

/// The phases of each route, in the order they run.
pub const PHASES: [Phase; 3] = [Phase::Max, Phase::Backend, Phase::Fixed];

/// The routes a target is measured through.
pub fn routes(kind: TargetKind) -> &'static [Route] {
    match kind {
        TargetKind::Wsgate => &[
            Route::Sdk,
            Route::SdkNoIds,
            Route::SdkReceipts,
            Route::WsgateHttp,
            Route::WsgateGrpc,
        ],
        TargetKind::Plain | TargetKind::Node => &[Route::PeerHttp],
    }
}

pub async fn run(ctx: &Ctx, results: &mut Results) {
    let m = ctx.plan.clients;
    ctx.progress.say(format!(
        "== broadcast: {m} clients, 100-byte messages; max throughput, then {} deliveries/s",
        ctx.plan.rate
    ));
    if let Err(e) = ctx.check_clients("broadcast", m) {
        for &kind in &ctx.targets {
            failed(ctx, results, Scenario::Broadcast, kind, &e);
        }
        return;
    }
    for &kind in &ctx.targets {
        for &route in routes(kind) {
            match one(ctx, results, kind, route).await {
                Ok(rows) => results.broadcast.extend(rows),
                Err(e) => failed(ctx, results, Scenario::Broadcast, kind, &e),
            }
        }
    }
}

async fn one(
    ctx: &Ctx,
    results: &mut Results,
    kind: TargetKind,
    route: Route,
) -> Result<Vec<LoadRow>, BenchError> {
    ctx.measure(kind, results, async |target| {
        let fleet = fleet::connect(
            FleetSpec {
                label: format!("broadcast {kind}-{}", route.label()),
                target: kind.to_string(),
                count: ctx.plan.clients,
                server: target.ws,
                path: fleet::same_path(target.client_path("")),
                behaviour: Behaviour::Receive,
                source_addrs: ctx.plan.source_addrs,
                concurrency: ctx.plan.connect_concurrency,
            },
            &ctx.progress,
        )
        .await?;
        let sdk: Option<Registered> = match route {
            Route::Sdk | Route::SdkReceipts => Some(
                ctx.business(target, Role::Publisher, Arc::default())
                    .await?,
            ),
            Route::SdkNoIds => Some(
                ctx.business(target, Role::PublisherNoIds, Arc::default())
                    .await?,
            ),
            Route::WsgateHttp
            | Route::WsgateGrpc
            | Route::PeerHttp
            | Route::Rabbitmq
            | Route::RedisList => None,
        };
        let mut rows = Vec::new();
        for phase in PHASES {
            let row = LoadPhase {
                ctx,
                target,
                fleet: &fleet,
                route,
                sdk: sdk.as_ref().map(|r| &r.client),
                broker: None,
                action: Action::Broadcast,
                fanout: fleet.count,
                phase,
                label: format!("broadcast {kind}-{} {}", route.label(), phase.label()),
            }
            .run()
            .await?;
            rows.push(row);
        }
        drop(sdk);
        fleet.close().await;
        Ok(rows)
    })
    .await
}
