//! Accepts worker links from business processes, after a TLS handshake with `--worker-tls`.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::context::Context;
use super::session;
use crate::tls::TlsReloader;

/// The accept loop; returns when `stop` is cancelled. With `tls`, every link is accepted with
/// the TLS configuration in service at that moment.
pub(crate) async fn run(
    listener: TcpListener,
    tls: Option<TlsReloader>,
    ctx: Arc<Context>,
    stop: CancellationToken,
    close_links: CancellationToken,
    tracker: TaskTracker,
) {
    crate::accept::run(listener, "a worker link", stop, |stream, peer| {
        let ctx = ctx.clone();
        let close = close_links.clone();
        let tls = tls.as_ref().map(TlsReloader::acceptor);
        tracker.spawn(async move { handshake(stream, peer, tls, ctx, close).await });
    })
    .await
}

/// The TLS handshake, if any (within --handshake-timeout), then the link.
async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    ctx: Arc<Context>,
    close: CancellationToken,
) {
    let Some(acceptor) = tls else {
        return session::serve(stream, peer, ctx, close).await;
    };
    let timeout = ctx.config.handshake_timeout;
    let accepted = tokio::select! {
        _ = close.cancelled() => return,
        r = tokio::time::timeout(timeout, acceptor.accept(stream)) => r,
    };
    match accepted {
        Ok(Ok(stream)) => session::serve(stream, peer, ctx, close).await,
        // A business process without TLS (or one that does not trust the certificate) ends
        // here: worth a warning, it will keep retrying.
        Ok(Err(e)) => tracing::warn!(
            %peer,
            error = %e,
            "worker link TLS handshake failed (--worker-tls is on: business processes must connect with TLS); closed"
        ),
        Err(_) => tracing::warn!(%peer, ?timeout, "worker link TLS handshake timed out; closed"),
    }
}
