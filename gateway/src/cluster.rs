//! The gateway's view of its cluster: the SDK's cluster client, connected to every gateway
//! (itself included) as a business process that wants no events.
//!
//! It is how one gateway acts on the whole cluster (the HTTP and gRPC push APIs use it): there is
//! no second implementation of routing and merging. It connects in the background once this
//! gateway's own worker listener is serving, so [`ClusterSlot::ready`] waits for it.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use wsgate_business::{Cluster, Discovery, DnsDiscovery, EventKind, StaticDiscovery};

use crate::config::Config;

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

/// The discovery the configuration asks for, if any.
fn discovery(config: &Config) -> Option<Box<dyn Discovery>> {
    if let Some(dns) = &config.peers_dns {
        let (name, port) = dns.rsplit_once(':')?;
        let mut dns = DnsDiscovery::new(name, port.parse().ok()?);
        if let Some(server) = config.peers_dns_server {
            dns = dns.nameserver(server);
        }
        return Some(Box::new(dns));
    }
    (!config.peers.is_empty())
        .then(|| Box::new(StaticDiscovery::new(config.peers.clone())) as Box<dyn Discovery>)
}

/// The slot's two ends, when the configuration names peers.
pub(crate) fn slot(config: &Config) -> Option<(watch::Sender<Option<Cluster>>, ClusterSlot)> {
    config.in_cluster().then(|| {
        let (tx, rx) = watch::channel(None);
        (tx, ClusterSlot(rx))
    })
}

/// Connects the cluster client (retrying until it works or the gateway stops), publishes it,
/// and shuts it down when `stop` fires.
pub(crate) async fn run(
    config: Config,
    tx: watch::Sender<Option<Cluster>>,
    stop: CancellationToken,
) {
    let mut delay = Duration::from_millis(100);
    let cluster = loop {
        let Some(discovery) = discovery(&config) else {
            return;
        };
        let connect = Cluster::builder(discovery)
            .name("wsgate-peer")
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
    tracing::info!("cluster client connected to the peers");
    let _ = tx.send(Some(cluster.clone()));
    stop.cancelled().await;
    cluster.shutdown().await;
}
