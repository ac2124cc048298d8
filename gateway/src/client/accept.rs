//! Accepts client TCP connections and hands each to the handshake (after the TLS handshake,
//! with `--tls-cert`), then to its connection task.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{ClientStream, connection};
use crate::server::Shared;
use crate::tls::TlsReloader;

/// The accept loop; returns when `stop` is cancelled. With `tls`, every connection is
/// accepted with the TLS configuration in service at that moment.
pub(crate) async fn run(
    listener: TcpListener,
    tls: Option<TlsReloader>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    close_clients: CancellationToken,
    tracker: TaskTracker,
) {
    crate::accept::run(listener, "a client connection", stop, |stream, peer| {
        let shared = shared.clone();
        let close = close_clients.clone();
        let tls = tls.as_ref().map(TlsReloader::acceptor);
        tracker.spawn(async move { handshake(stream, peer, tls, shared, close).await });
    })
    .await
}

pub(crate) fn ws_config(max_message_bytes: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        // Small buffers: idle connections are the common case and memory per connection is
        // a headline number. Larger messages still work; the buffers grow as needed.
        .read_buffer_size(4 * 1024)
        // Frames fed in one burst are written together; flush writes whatever is left.
        .write_buffer_size(8 * 1024)
        .max_message_size(Some(max_message_bytes))
        .max_frame_size(Some(max_message_bytes))
}

/// The TLS handshake, if any, then the WebSocket one, both within --handshake-timeout.
async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    close_clients: CancellationToken,
) {
    let deadline = Instant::now() + shared.config.handshake_timeout;
    let Some(acceptor) = tls else {
        return upgrade(stream, peer, deadline, shared, close_clients).await;
    };
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => upgrade(stream, peer, deadline, shared, close_clients).await,
        // Scanners and clients that do not trust the certificate end here: not worth a warning.
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}

async fn upgrade<S: ClientStream>(
    stream: S,
    peer: SocketAddr,
    deadline: Instant,
    shared: Arc<Shared>,
    close_clients: CancellationToken,
) {
    let accepted =
        tokio::time::timeout_at(deadline, super::handshake::accept(stream, peer, &shared)).await;
    match accepted {
        Ok(Some((ws, admission))) => {
            connection::serve(ws, peer, admission, shared, close_clients).await
        }
        Ok(None) => {}
        Err(_) => tracing::debug!(%peer, "WebSocket handshake timed out"),
    }
}
