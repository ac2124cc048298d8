//! `/healthz` and `/readyz`: what a load balancer or an orchestrator probes.
//!
//! `/healthz` answers 200 `ok` as long as the process serves HTTP at all. `/readyz` answers 200
//! `ready` while the gateway accepts clients and is not draining (`Lifecycle::ready`), else 503:
//! `draining` once shutdown has begun, `starting` before the gateway first served. Neither needs
//! the API key. With `--stream-engine redis`, `/readyz` answers 200 `degraded: …` while Redis
//! cannot be reached: the gateway still serves clients, and every gateway shares the one Redis,
//! so a balancer that took it out would help nobody. The same for a consumer that is not
//! connected to its broker (docs/consumers.md): the body names each, with why.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use super::context::ApiContext;
use crate::stats::Stats;

/// The probe routes.
pub(crate) fn routes() -> Router<ApiContext> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(context): State<ApiContext>) -> (StatusCode, String) {
    if !context.lifecycle.ready() {
        return if context.lifecycle.draining() {
            (StatusCode::SERVICE_UNAVAILABLE, "draining".into())
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "starting".into())
        };
    }
    // Still serving clients in each case below: the brokers and the stream engine's Redis are
    // shared by every gateway, so taking this one out of a load balancer would help nobody.
    let mut degraded = Vec::new();
    if Stats::get(&context.stats.stream_engine_up) == 0 {
        degraded.push(
            "the stream engine (Redis) cannot be reached; stream publications are refused or delivered without history (--stream-redis-down)".to_owned(),
        );
    }
    for c in context.stats.consumers.all() {
        if !c.is_up() {
            let error = c.error().unwrap_or_default();
            degraded.push(format!(
                "consumer {} ({}) is not reading: {error}; it reconnects with backoff",
                c.name, c.kind
            ));
        }
    }
    if degraded.is_empty() {
        (StatusCode::OK, "ready".into())
    } else {
        (StatusCode::OK, format!("degraded: {}", degraded.join("; ")))
    }
}
