//! What the HTTP and gRPC APIs act on: the settings, the connections (for /metrics and the
//! console's counts), the counters, the lifecycle (/readyz) and the gateway's cluster client,
//! through which every command and query goes, so the APIs act on the whole cluster when
//! peers are set.

use std::sync::Arc;

use crate::cluster::ClusterSlot;
use crate::config::Config;
use crate::connections::Connections;
use crate::lifecycle::Lifecycle;
use crate::stats::Stats;

#[derive(Debug, Clone)]
pub(crate) struct ApiContext {
    pub config: Arc<Config>,
    pub conns: Arc<Connections>,
    pub stats: Arc<Stats>,
    pub lifecycle: Arc<Lifecycle>,
    pub cluster: ClusterSlot,
}
