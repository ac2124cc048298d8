//! What each gateway of a cluster is doing, as [`Cluster::gateways`](crate::Cluster::gateways)
//! reports it: one [`GatewayStatus`] per discovered address.

use crate::link::GatewayState;

/// One gateway of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayStatus {
    /// Its worker address, as discovery named it.
    pub addr: String,
    /// Its node id, learned when it first registered (kept while it is down); `None` before.
    pub node_id: Option<String>,
    /// What the link is doing.
    pub state: GatewayState,
    /// Why the link is down or the last attempt failed; `None` while it is up.
    pub last_error: Option<String>,
}
