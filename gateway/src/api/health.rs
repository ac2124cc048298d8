//! `/healthz` and `/readyz`: what a load balancer or an orchestrator probes.
//!
//! `/healthz` answers 200 `ok` as long as the process serves HTTP at all. `/readyz` answers 200
//! `ready` while the gateway accepts clients and is not draining (`Lifecycle::ready`), else 503:
//! `draining` once shutdown has begun, `starting` before the gateway first served. Neither needs
//! the API key. With `--stream-engine redis`, `/readyz` answers 200 `degraded: …` while Redis
//! cannot be reached: the gateway still serves clients, and every gateway shares the one Redis,
//! so a balancer that took it out would help nobody.

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

async fn readyz(State(context): State<ApiContext>) -> (StatusCode, &'static str) {
    if context.lifecycle.ready() && Stats::get(&context.stats.stream_engine_up) == 0 {
        // Still serving clients: every gateway shares the one Redis, so taking this one out of
        // a load balancer would help nobody.
        (
            StatusCode::OK,
            "degraded: the stream engine (Redis) cannot be reached; stream publications are refused or delivered without history (--stream-redis-down)",
        )
    } else if context.lifecycle.ready() {
        (StatusCode::OK, "ready")
    } else if context.lifecycle.draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting")
    }
}
