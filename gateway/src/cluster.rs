//! The gateway's view of its cluster: the SDK's cluster client, connected to every gateway
//! (itself included; only itself without peers) as a business process that wants no events.
//!
//! It is how one gateway acts on the whole cluster, and the one path the HTTP and gRPC APIs
//! take for every command and query: there is no second implementation of routing and
//! merging. It connects in the background once this gateway's own worker listener is serving,
//! so [`ClusterSlot::ready`] waits for it.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use wsgate_business::{Cluster, Discovery, DnsDiscovery, EventKind, StaticDiscovery};

use crate::config::Config;

/// The name gateways' cluster clients register with; reserved for them.
pub const PEER_LINK_NAME: &str = "wsgate-peer";

/// Where the cluster client appears once connected.
#[derive(Debug, Clone)]
pub struct ClusterSlot(watch::Receiver<Option<Cluster>>);

impl ClusterSlot {
    /// The cluster client, if it has connected.
    pub fn get(&self) -> Option<Cluster> {
        self.0.borrow().clone()
    }

    /// Waits until the cluster client has connected; `None` once the gateway has stopped.
    pub async fn ready(&mut self) -> Option<Cluster> {
        self.0
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|c| c.clone())
    }
}

/// The gateways the cluster client connects to: the configured peers, else this gateway alone
/// (through its own worker listener, reached on loopback when it listens on every address).
fn discovery(config: &Config, own_worker: SocketAddr) -> Box<dyn Discovery> {
    if let Some((name, port)) = config.peers_dns.as_deref().and_then(|d| d.rsplit_once(':')) {
        // validate() checked NAME:PORT.
        let mut dns = DnsDiscovery::new(name, port.parse().unwrap_or_default());
        if let Some(server) = config.peers_dns_server {
            dns = dns.nameserver(server);
        }
        return Box::new(dns);
    }
    if !config.peers.is_empty() {
        return Box::new(StaticDiscovery::new(config.peers.clone()));
    }
    let mut own = own_worker;
    if own.ip().is_unspecified() {
        own.set_ip(if own.is_ipv4() {
            Ipv4Addr::LOCALHOST.into()
        } else {
            Ipv6Addr::LOCALHOST.into()
        });
    }
    Box::new(StaticDiscovery::new(vec![own.to_string()]))
}

/// The slot's two ends.
pub(crate) fn slot() -> (watch::Sender<Option<Cluster>>, ClusterSlot) {
    let (tx, rx) = watch::channel(None);
    (tx, ClusterSlot(rx))
}

/// Connects the cluster client (retrying until it works or the gateway stops), publishes it,
/// and shuts it down when `stop` fires.
pub(crate) async fn run(
    config: Config,
    own_worker: SocketAddr,
    tx: watch::Sender<Option<Cluster>>,
    stop: CancellationToken,
) {
    let mut delay = Duration::from_millis(100);
    let cluster = loop {
        let connect = Cluster::builder(discovery(&config, own_worker))
            .name(PEER_LINK_NAME)
            .token(config.worker_token.clone().unwrap_or_default())
            .events([EventKind::None])
            .connect();
        let attempt = tokio::select! {
            _ = stop.cancelled() => return,
            r = connect => r,
        };
        match attempt {
            Ok((cluster, mut events)) => {
                // Only link status arrives here (no connection events); keep the queue empty.
                tokio::spawn(async move { while events.recv().await.is_some() {} });
                break cluster;
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "cannot reach the cluster peers yet");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    };
    tracing::debug!("cluster client connected");
    let _ = tx.send(Some(cluster.clone()));
    stop.cancelled().await;
    cluster.shutdown().await;
}
