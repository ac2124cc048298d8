//! How an API call reaches the cluster: through the gateway's cluster client, waiting for it
//! to connect for a moment at most, and turning "no gateway answered" into a 503.

use std::time::Duration;

use wsgate_business::{Cluster, GatewayFailure};

use super::context::ApiContext;
use super::errors::ApiError;
use crate::cluster::none_answered;

/// How long a call waits for the cluster client to connect (at startup) before a 503.
pub(crate) const READY_WAIT: Duration = Duration::from_secs(2);

/// The cluster client, or 503 when it has not connected within [`READY_WAIT`].
pub(crate) async fn cluster(context: &ApiContext) -> Result<Cluster, ApiError> {
    context
        .cluster
        .within(READY_WAIT)
        .await
        .map_err(ApiError::unavailable)
}

/// Fails with 503 when every gateway the cluster client knows is in `failed`: then nothing
/// was carried out and the answer would be empty. Partial failures pass (they are in `failed`).
pub(crate) fn some_answered(cluster: &Cluster, failed: &[GatewayFailure]) -> Result<(), ApiError> {
    if none_answered(cluster, failed) {
        Err(ApiError::none_answered(failed))
    } else {
        Ok(())
    }
}
