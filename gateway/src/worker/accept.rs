//! Accepts worker links from business processes.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::session;
use crate::server::Shared;

/// The accept loop; returns when `stop` is cancelled.
pub(crate) async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
    close_links: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let shared = shared.clone();
                let close = close_links.clone();
                tracker.spawn(async move { session::serve(stream, peer, shared, close).await });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a worker link failed; retrying in 100ms");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
}
