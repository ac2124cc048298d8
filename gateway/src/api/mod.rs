//! The HTTP API, /metrics, /healthz, /readyz and the console page (127.0.0.1:8082 by default).
//!
//! One axum server. `/api/v1/*` (the push API: commands are POST with JSON bodies, queries are
//! GET with query parameters) needs `Authorization: Bearer <key>` when an API key is set, and
//! answers errors as `{"error": code, "message": text}`; every call goes through the gateway's
//! cluster client, so with peers configured it acts on the whole cluster and names the gateways
//! that did not answer in `failed`. `/openapi.json` describes `/api/v1`. `/metrics`,
//! `/healthz`, `/readyz` and the console need no key.
//!
//! Modules: `routes` (the /api/v1 table), `commands` and `queries` (the handlers), `auth` (the
//! key check), `extract` (request parsing with JSON errors), `payload` (text or base64
//! binary), `reply` (success bodies), `reach` (reaching the cluster client), `errors`,
//! `openapi`; `metrics`, `health` and `console` bring their own routes.

mod auth;
pub(crate) mod commands;
mod console;
pub(crate) mod context;
pub(crate) mod errors;
pub(crate) mod extract;
mod health;
mod metrics;
mod openapi;
mod payload;
mod queries;
mod reach;
mod reply;
mod routes;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware;
use axum::routing::{any, get};
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::context::ApiContext;
use self::errors::ApiError;
use crate::tls::incoming::TlsListener;
use crate::tls::{Alpn, TlsReloader};

/// How long requests still running at shutdown may take to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The largest request body: a frame's worth of payload, base64 included, plus the JSON.
fn body_limit(max_frame_bytes: usize) -> usize {
    (max_frame_bytes / 3)
        .saturating_mul(4)
        .saturating_add(64 * 1024)
}

/// An /api path that is no route.
async fn unknown_route(request: Request) -> ApiError {
    ApiError::not_found(request.method().as_str(), request.uri().path())
}

/// The /api part of the router: every /api/v1 route, a JSON 404 for other /api paths, all
/// behind the API key check.
fn api_routes(context: &ApiContext) -> Router<ApiContext> {
    routes::v1()
        .into_iter()
        .fold(Router::new(), |router, route| {
            router.route(route.path, route.into_method_router())
        })
        .route("/api", any(unknown_route))
        .route("/api/{*rest}", any(unknown_route))
        .layer(middleware::from_fn_with_state(
            context.clone(),
            auth::require_key,
        ))
        .layer(DefaultBodyLimit::max(body_limit(
            context.config.max_frame_bytes,
        )))
}

/// The whole HTTP router.
pub(crate) fn router(context: ApiContext) -> Router {
    Router::new()
        .merge(api_routes(&context))
        .route("/openapi.json", get(openapi::document))
        .merge(metrics::routes())
        .merge(health::routes())
        .merge(console::routes())
        .with_state(context)
}

/// Serves the HTTP API (over TLS with `tls`, `--api-tls`) until `stop` fires, then lets
/// running requests finish for a moment.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsReloader>,
    context: ApiContext,
    stop: CancellationToken,
) {
    let Some(tls) = tls else {
        // Answers are small and a backend waits for each one: no Nagle delay (the TLS
        // listener sets the same on every socket it accepts).
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        return serve_on(listener, context, stop).await;
    };
    let timeout = context.config.handshake_timeout;
    match TlsListener::start(
        listener,
        tls,
        Alpn::Http1,
        timeout,
        stop.clone(),
        "HTTP API",
    ) {
        Ok(listener) => serve_on(listener, context, stop).await,
        Err(e) => tracing::error!(error = %e, "the HTTP API cannot serve TLS"),
    }
}

async fn serve_on<L>(listener: L, context: ApiContext, stop: CancellationToken)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let server = axum::serve(listener, router(context))
        .with_graceful_shutdown(stop.clone().cancelled_owned())
        .into_future();
    let grace = async {
        stop.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = server => {
            if let Err(e) = result {
                tracing::error!(error = %e, "the HTTP API stopped with an error");
            }
        }
        _ = grace => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "HTTP API requests still running at shutdown were cut off");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_limit_fits_a_base64_frame() {
        let frame = 16 * 1024 * 1024;
        assert!(body_limit(frame) > frame / 3 * 4);
        assert!(body_limit(usize::MAX) > 0);
    }
}
