//! The gateway's view of its cluster: the SDK's cluster client, connected to every gateway
//! (itself included; only itself without peers) as a business process that wants no events.
//!
//! It is how one gateway acts on the whole cluster, and the one path the HTTP and gRPC APIs
//! take for every command and query: there is no second implementation of routing and
//! merging. This gateway's own part of a command is carried out by a call
//! ([`crate::worker::in_process`]); its link to itself still registers it (node id, limits,
//! status). It connects in the background once this gateway's own worker listener is serving,
//! so [`ClusterSlot::ready`] waits for it.

pub use crate::links::PEER_LINK_NAME;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use wsgate_business::{
    Cluster, ClusterReport, Discovery, DnsDiscovery, Error, EventKind, GatewayFailure, InProcess,
    StaticDiscovery, TlsOptions,
};
use wsgate_proto::backoff::{Backoff, DEFAULT_MAX, DEFAULT_MIN, Jitter};
use wsgate_proto::v1::ForceOffline;
use wsgate_proto::validate;

use crate::config::Config;

/// Where the cluster client appears once connected.
#[derive(Debug, Clone)]
pub struct ClusterSlot(watch::Receiver<Option<Cluster>>);

impl ClusterSlot {
    /// The cluster client, if it has connected.
    pub fn get(&self) -> Option<Cluster> {
        self.0.borrow().clone()
    }

    /// The cluster client, waiting at most `wait` for it to connect (at startup). The error
    /// says why there is none and what to do, for an API caller.
    pub(crate) async fn within(&self, wait: Duration) -> Result<Cluster, String> {
        if let Some(cluster) = self.get() {
            return Ok(cluster);
        }
        match tokio::time::timeout(wait, self.clone().ready()).await {
            Ok(Some(cluster)) => Ok(cluster),
            Ok(None) => Err("the gateway has stopped; send the request to another gateway".into()),
            Err(_) => Err(format!(
                "the gateway's cluster client has not connected yet (waited {wait:?}); check that the peers (--peers / --peers-dns) are running and reachable, then retry"
            )),
        }
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

/// True when every gateway the cluster client knows is named in `failed`: nothing was carried
/// out, so an API answers "unavailable" rather than an empty success.
pub(crate) fn none_answered(cluster: &Cluster, failed: &[GatewayFailure]) -> bool {
    if failed.is_empty() {
        return false;
    }
    let named = |gateway: &str| failed.iter().any(|f| f.gateway == gateway);
    cluster
        .gateways()
        .iter()
        .all(|g| named(&g.addr) || g.node_id.as_deref().is_some_and(named))
}

/// A `ForceOffline` as both APIs take it, naming connections and users at once: checked as
/// received (`validate::force_offline`, so one naming no one is refused as on the worker link),
/// then sent as two commands at the same time, by connection (to their owners) and by user
/// (to every gateway), and their reports combined.
pub(crate) async fn force_offline(
    cluster: &Cluster,
    c: ForceOffline,
) -> Result<ClusterReport, Error> {
    let code = validate::force_offline(&c, &validate::Limits::default())?;
    let last = c.last_message;
    let by_conn = async {
        if c.conn_ids.is_empty() {
            return Ok(ClusterReport::default());
        }
        cluster
            .force_offline(c.conn_ids, code, &c.reason, last.clone())
            .await
    };
    let by_user = async {
        if c.user_ids.is_empty() {
            return Ok(ClusterReport::default());
        }
        cluster
            .force_offline_users(c.user_ids, code, &c.reason, last.clone())
            .await
    };
    let (by_conn, by_user) = tokio::join!(by_conn, by_user);
    Ok(combine(by_conn?, by_user?))
}

/// Two reports of one command sent in two parts ([`force_offline`]): counts summed, lists
/// concatenated, each failing gateway named once.
pub(crate) fn combine(a: ClusterReport, b: ClusterReport) -> ClusterReport {
    let mut out = a;
    out.report.delivered = out.report.delivered.saturating_add(b.report.delivered);
    out.report
        .unknown_conn_ids
        .extend(b.report.unknown_conn_ids);
    out.report
        .unknown_user_ids
        .extend(b.report.unknown_user_ids);
    for failure in b.failed {
        if !out.failed.iter().any(|f| f.gateway == failure.gateway) {
            out.failed.push(failure);
        }
    }
    out
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
    own: Arc<dyn InProcess>,
    tls: Option<TlsOptions>,
    tx: watch::Sender<Option<Cluster>>,
    stop: CancellationToken,
) {
    // The SDK's first and largest waits, without jitter: one gateway, one retry sequence.
    let mut backoff = Backoff::new(DEFAULT_MIN, DEFAULT_MAX).with_jitter(Jitter::None);
    let cluster = loop {
        let mut builder = Cluster::builder(discovery(&config, own_worker))
            .name(PEER_LINK_NAME)
            .token(config.worker_token.clone().unwrap_or_default())
            .events([EventKind::None])
            // This gateway's part of a command is a call, not a round trip over its own link.
            .in_process(own.clone());
        if let Some(tls) = &tls {
            // The server name is each peer address's host: a certificate for peers reached by
            // IP (and for this gateway's own 127.0.0.1) needs IP subject alternative names.
            builder = builder.tls(tls.clone());
        }
        let connect = builder.connect();
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
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?delay, "cannot reach the cluster peers yet");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    };
    tracing::debug!("cluster client connected");
    let _ = tx.send(Some(cluster.clone()));
    stop.cancelled().await;
    cluster.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_reports_keep_one_failure_per_gateway() {
        let failure = |g: &str| GatewayFailure {
            gateway: g.into(),
            error: "down".into(),
        };
        let mut into = ClusterReport::default();
        into.report.delivered = 2;
        into.failed.push(failure("gw1"));
        let mut more = ClusterReport::default();
        more.report.delivered = 1;
        more.report.unknown_conn_ids.push("x".into());
        more.failed = vec![failure("gw1"), failure("gw2")];
        let into = combine(into, more);
        assert_eq!(into.report.delivered, 3);
        assert_eq!(into.report.unknown_conn_ids, ["x"]);
        assert_eq!(into.failed.len(), 2);
    }
}
