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

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
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
    let service = PushApiServer::with_interceptor(PushService::new(context, stop.clone()), auth);
    let router = Server::builder()
        .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
        .add_service(service);
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
