//! Accepts client TCP connections and hands each to the handshake (after the TLS handshake,
//! with `--tls-cert`), then to its connection task.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::context::Context;
use super::{ClientStream, connection};
use crate::tls::TlsReloader;

/// The accept loop; returns when `stop` is cancelled. With `tls`, every connection is
/// accepted with the TLS configuration in service at that moment.
pub(crate) async fn run(
    listener: TcpListener,
    tls: Option<TlsReloader>,
    ctx: Arc<Context>,
    stop: CancellationToken,
    close_clients: CancellationToken,
    tracker: TaskTracker,
) {
    crate::accept::run(listener, "a client connection", stop, |stream, peer| {
        let ctx = ctx.clone();
        let close = close_clients.clone();
        let tls = tls.as_ref().map(TlsReloader::acceptor);
        let serving = tracker.clone();
        tracker.spawn(handshake(stream, peer, tls, ctx, close, serving));
    })
    .await
}

/// The TLS handshake, if any, then the WebSocket one, both within --handshake-timeout; an
/// accepted client then gets a task of its own. The handshakes' state is large and needed
/// for a moment; a connection's task keeps its size for the connection's whole life, so the
/// two are separate tasks.
async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    ctx: Arc<Context>,
    close_clients: CancellationToken,
    tracker: TaskTracker,
) {
    let deadline = Instant::now() + ctx.config.handshake_timeout;
    let Some(acceptor) = tls else {
        return upgrade(stream, peer, deadline, ctx, close_clients, tracker).await;
    };
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => upgrade(stream, peer, deadline, ctx, close_clients, tracker).await,
        // Scanners and clients that do not trust the certificate end here: not worth a warning.
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

/// The WebSocket handshake; an accepted client's connection is spawned as a task of its own.
async fn upgrade<S: ClientStream>(
    stream: S,
    peer: SocketAddr,
    deadline: Instant,
    ctx: Arc<Context>,
    close_clients: CancellationToken,
    tracker: TaskTracker,
) {
    match tokio::time::timeout_at(deadline, super::handshake::accept(stream, peer, &ctx)).await {
        Ok(Some((stream, input, admission, seat))) => {
            let serve = connection::serve(stream, input, peer, admission, seat, ctx, close_clients);
            tracker.spawn(serve);
        }
        Ok(None) => {}
        Err(_) => tracing::debug!(%peer, "WebSocket handshake timed out"),
    }
}
