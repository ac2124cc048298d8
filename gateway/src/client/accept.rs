//! Accepts client TCP connections and hands each to the handshake, then to its connection task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::connection;
use crate::server::Shared;

/// The accept loop; returns when `stop` is cancelled.
pub(crate) async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
    close_clients: CancellationToken,
    tracker: TaskTracker,
) {
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::ZERO;
                let shared = shared.clone();
                let close = close_clients.clone();
                tracker.spawn(async move { handshake(stream, peer, shared, close).await });
            }
            Err(e) => {
                // Out of file descriptors (or similar): retrying at once would spin. Back off
                // and let existing connections keep working.
                backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                tracing::warn!(error = %e, retry_in = ?backoff, "accepting a client connection failed");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }
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

async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    close_clients: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let accepted = tokio::time::timeout(
        shared.config.handshake_timeout,
        super::handshake::accept(stream, peer, &shared),
    )
    .await;
    match accepted {
        Ok(Some((ws, admission))) => {
            connection::serve(ws, peer, admission, shared, close_clients).await
        }
        Ok(None) => {}
        Err(_) => tracing::debug!(%peer, "WebSocket handshake timed out"),
    }
}
