//! The gRPC API (127.0.0.1:8083 by default): the `wsgate.v1.PushApi` service of
//! `proto/wsgate/v1/api.proto`, served by tonic. `docs/grpc.md` describes it for callers.
//!
//! Every command and query goes through the gateway's cluster client like the HTTP API's, and
//! the `Events` stream registers its caller as a business process. Modules: `service` (the
//! RPCs), `events` (the events stream), `replies` (answers), `status` (errors), `auth` (the
//! API key).

mod auth;
mod events;
mod replies;
mod service;
mod status;

use std::time::Duration;

use axum::http::{HeaderValue, Response};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tower::util::MapResponseLayer;
use wsgate_proto::v1::push_api_server::PushApiServer;

use self::auth::ApiKey;
use self::service::PushService;
use crate::api::context::ApiContext;
use crate::tls::incoming::TlsListener;
use crate::tls::{Alpn, TlsReloader};

/// How often an idle HTTP/2 connection is pinged, so the events streams of callers that
/// vanished without closing (and their registrations) are found and removed.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// How long a keepalive ping may go unanswered before the connection is closed.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// tonic refuses a request over `max_decoding_message_size` with OUT_OF_RANGE; gRPC's
/// convention for a message too large to take is RESOURCE_EXHAUSTED, which is also what this
/// API answers when a command does not fit in a frame (`status`). No RPC of this service
/// answers OUT_OF_RANGE itself, so every one is that refusal.
fn too_large<B>(mut response: Response<B>) -> Response<B> {
    const OUT_OF_RANGE: &str = "11";
    const RESOURCE_EXHAUSTED: &str = "8";
    let headers = response.headers_mut();
    if headers
        .get("grpc-status")
        .is_some_and(|s| s == OUT_OF_RANGE)
    {
        headers.insert("grpc-status", HeaderValue::from_static(RESOURCE_EXHAUSTED));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static(
                "the request does not fit in one worker-link frame; send less per request (the limit is the gateway's --max-frame-bytes)",
            ),
        );
    }
    response
}

/// Serves the gRPC API (over TLS with ALPN `h2` with `tls`, `--api-tls`) until `stop` fires,
/// then lets the calls in flight finish (the events streams end at once, see `events`).
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsReloader>,
    context: ApiContext,
    stop: CancellationToken,
) {
    let auth = ApiKey::new(context.config.api_key.as_deref());
    let handshake_timeout = context.config.handshake_timeout;
    // A request that cannot fit in one worker-link frame is refused while it is read.
    let max_request = context.config.max_frame_bytes;
    let service = PushApiServer::new(PushService::new(context, stop.clone()))
        .max_decoding_message_size(max_request);
    let router = Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .layer(MapResponseLayer::new(too_large))
        .add_service(InterceptedService::new(service, auth));
    let served = match tls {
        None => {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            router
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await
        }
        Some(tls) => {
            let started = TlsListener::start(
                listener,
                tls,
                Alpn::H2,
                handshake_timeout,
                stop.clone(),
                "gRPC API",
            );
            let incoming = match started {
                Ok(listener) => listener.into_stream(),
                Err(e) => {
                    tracing::error!(error = %e, "the gRPC API cannot serve TLS");
                    return;
                }
            };
            router
                .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
                .await
        }
    };
    if let Err(e) = served {
        tracing::error!(error = %e, "the gRPC API stopped serving");
    }
}
