//! How an API call reaches the cluster: through the gateway's cluster client, waiting for it
//! to connect for a moment at most, and turning "no gateway answered" into a 503.

use std::time::Duration;

use wsgate_business::{Cluster, GatewayFailure};

use super::ApiContext;
use super::errors::ApiError;

/// How long a call waits for the cluster client to connect (at startup) before a 503.
pub(crate) const READY_WAIT: Duration = Duration::from_secs(2);

/// The cluster client, or 503 when it has not connected within [`READY_WAIT`].
pub(crate) async fn cluster(context: &ApiContext) -> Result<Cluster, ApiError> {
    if let Some(cluster) = context.cluster.get() {
        return Ok(cluster);
    }
    let mut slot = context.cluster.clone();
    match tokio::time::timeout(READY_WAIT, slot.ready()).await {
        Ok(Some(cluster)) => Ok(cluster),
        Ok(None) => Err(ApiError::unavailable(
            "the gateway has stopped; send the request to another gateway",
        )),
        Err(_) => Err(ApiError::unavailable(format!(
            "the gateway's cluster client has not connected yet (waited {READY_WAIT:?}); check that the peers (--peers / --peers-dns) are running and reachable, then retry"
        ))),
    }
}

/// Fails with 503 when every gateway the cluster client knows is in `failed`: then nothing
/// was carried out and the answer would be empty. Partial failures pass (they are in `failed`).
pub(crate) fn some_answered(cluster: &Cluster, failed: &[GatewayFailure]) -> Result<(), ApiError> {
    if failed.is_empty() {
        return Ok(());
    }
    let named = |gateway: &str| failed.iter().any(|f| f.gateway == gateway);
    let none = cluster
        .gateways()
        .iter()
        .all(|g| named(&g.addr) || g.node_id.as_deref().is_some_and(named));
    if none {
        Err(ApiError::none_answered(failed))
    } else {
        Ok(())
    }
}
