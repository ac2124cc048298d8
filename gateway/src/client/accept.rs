//! Accepts client TCP connections and performs the WebSocket handshake.
//!
//! The handshake callback checks the path (anything but the configured one is a 404 before the
//! upgrade) and captures what business processes learn in ConnOpen: address, forwarding
//! headers, path, query and the configured request headers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::connection;
use crate::server::Shared;

/// What the handshake request told us about the client.
#[derive(Debug, Default)]
pub(crate) struct RequestInfo {
    pub path: String,
    pub query: String,
    pub forwarded_for: String,
    pub real_ip: String,
    pub headers: HashMap<String, String>,
}

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
    let mut info = RequestInfo::default();
    let config = &shared.config;
    // The error type is tungstenite's; its size is not ours to choose.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let path = req.uri().path();
        if path != config.ws_path {
            let mut err = ErrorResponse::new(Some(format!(
                "no WebSocket endpoint at {path}; connect to {}\n",
                config.ws_path
            )));
            *err.status_mut() = StatusCode::NOT_FOUND;
            return Err(err);
        }
        info.path = path.to_owned();
        info.query = req.uri().query().unwrap_or_default().to_owned();
        let header = |name: &str| {
            let values: Vec<&str> = req
                .headers()
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            values.join(", ")
        };
        info.forwarded_for = header("x-forwarded-for");
        info.real_ip = header("x-real-ip");
        for name in &config.forward_headers {
            let value = header(name);
            if !value.is_empty() {
                info.headers.insert(name.to_ascii_lowercase(), value);
            }
        }
        Ok(resp)
    };
    let accept = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        callback,
        Some(ws_config(config.max_message_bytes)),
    );
    match tokio::time::timeout(config.handshake_timeout, accept).await {
        Ok(Ok(ws)) => connection::serve(ws, peer, info, shared, close_clients).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "WebSocket handshake failed"),
        Err(_) => tracing::debug!(%peer, "WebSocket handshake timed out"),
    }
}
