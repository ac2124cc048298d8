//! Shutting a gateway down, in order, within `--drain-timeout`: `/readyz` fails first; the
//! listeners stop accepting; business processes hear `Draining`; every client is closed (1001,
//! or 1012 in a cluster) and its connection task delivers its ConnClose; then every worker link
//! writes out its queue and closes; last the APIs and the cluster client stop.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wsgate_proto::v1::{Draining, envelope::Body};

use crate::config::Config;
use crate::connections::Connections;
use crate::connections::registry::CloseRequest;
use crate::lifecycle::Lifecycle;
use crate::links::Links;

/// What a serving gateway runs, and the tokens that stop each part.
#[derive(Debug, Default)]
pub(super) struct Running {
    pub stop_accept: CancellationToken,
    pub close_clients: CancellationToken,
    pub close_links: CancellationToken,
    pub stop_apis: CancellationToken,
    pub stop_cluster: CancellationToken,
    /// The connection tasks (handshakes included) and the worker link sessions.
    pub clients: TaskTracker,
    pub links: TaskTracker,
    pub accept: Vec<JoinHandle<()>>,
    /// The consumers (docs/consumers.md), stopped with the listeners.
    pub consumers: Vec<JoinHandle<()>>,
    pub apis: Vec<JoinHandle<()>>,
    pub cluster: Option<JoinHandle<()>>,
}

/// How long a business process may take to be told before the clients are closed anyway.
const NOTIFY_LIMIT: Duration = Duration::from_millis(500);
/// What a link always gets to flush, however late in the drain.
const LINK_FLUSH: Duration = Duration::from_millis(500);
/// How long the APIs and the cluster client may take to stop.
const STOP_LIMIT: Duration = Duration::from_secs(2);

pub(super) async fn run(
    config: &Config,
    conns: &Connections,
    links: &Links,
    lifecycle: &Lifecycle,
    running: Running,
) {
    // Load balancers see /readyz fail first; the APIs keep answering through the drain.
    lifecycle.drain();
    let drain = config.drain_timeout;
    tracing::info!(
        clients = conns.registry.len(),
        links = links.len(),
        ?drain,
        "shutting down: closing clients, then worker links"
    );
    let deadline = Instant::now() + drain;
    running.stop_accept.cancel();
    for task in running.accept.into_iter().chain(running.consumers) {
        let _ = task.await;
    }
    running.clients.close();
    running.links.close();

    // Business processes hear it first: the connections' closes follow.
    let (close_code, close_reason) = config.shutdown_close();
    let draining = Draining {
        close_code: u32::from(close_code),
        drain_timeout_ms: drain.as_millis().min(u128::from(u32::MAX)) as u32,
    };
    links
        .notify_all(Body::Draining(draining), NOTIFY_LIMIT)
        .await;
    // First the token, then every registered connection: one registered meanwhile sees the
    // token once it is in the registry (`client/connection.rs::serve`).
    running.close_clients.cancel();
    conns
        .registry
        .close_all(&CloseRequest::gateway(close_code, close_reason));
    if tokio::time::timeout_at(deadline, running.clients.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            left = conns.registry.len(),
            "drain timeout: some clients did not finish closing"
        );
    }
    running.close_links.cancel();
    let link_deadline = deadline.max(Instant::now() + LINK_FLUSH);
    if tokio::time::timeout_at(link_deadline, running.links.wait())
        .await
        .is_err()
    {
        tracing::warn!("drain timeout: some worker links did not finish writing");
    }
    running.stop_apis.cancel();
    for task in running.apis {
        let _ = tokio::time::timeout(STOP_LIMIT, task).await;
    }
    running.stop_cluster.cancel();
    if let Some(task) = running.cluster {
        let _ = tokio::time::timeout(STOP_LIMIT, task).await;
    }
    tracing::info!("wsgate stopped");
}
