//! The accept loop both TCP listeners (clients and worker links) run.
//!
//! An accept error is usually the process being out of file descriptors: retrying at once
//! would spin, so the loop backs off (10 ms doubling to 1 s) and existing connections keep
//! working until descriptors free up.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Accepts until `stop` fires, handing each connection (with TCP_NODELAY set) to `on_accept`.
pub(crate) async fn run(
    listener: TcpListener,
    what: &'static str,
    stop: CancellationToken,
    mut on_accept: impl FnMut(TcpStream, SocketAddr),
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
                let _ = stream.set_nodelay(true);
                on_accept(stream, peer);
            }
            Err(e) => {
                backoff = (backoff * 2).clamp(Duration::from_millis(10), Duration::from_secs(1));
                tracing::warn!(error = %e, retry_in = ?backoff, "accepting {what} failed");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }
}
