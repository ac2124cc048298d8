//! How a business process describes its cluster client: how to find the gateways, plus the
//! same settings a single-gateway [`ClientBuilder`](crate::ClientBuilder) has, applied to the
//! link to every gateway. [`ClusterBuilder::connect`] finds the gateways and connects to all
//! of them.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};
use wsgate_proto::v1::EventKind;

use crate::builder::ClientBuilder;
use crate::cluster::client::Cluster;
use crate::cluster::events::ClusterEvents;
use crate::cluster::in_process::InProcess;
use crate::cluster::members::Members;
use crate::config::MIN_DURATION;
use crate::discovery::Discovery;
use crate::error::Error;
use crate::tls::TlsOptions;

impl Cluster {
    /// Starts describing a cluster client of the gateways `discovery` names, for example
    /// a [`StaticDiscovery`](crate::StaticDiscovery) list of worker addresses or
    /// [`DnsDiscovery::new("wsgate", 8081)`](crate::DnsDiscovery::new).
    pub fn builder(discovery: impl Discovery) -> ClusterBuilder {
        ClusterBuilder::new(discovery)
    }
}

/// How often a cluster asks discovery again, unless set.
pub const DEFAULT_REDISCOVER_EVERY: Duration = Duration::from_secs(10);

/// Builds a [`Cluster`]; made by [`Cluster::builder`].
///
/// Every setting but [`rediscover_every`](Self::rediscover_every) means what it means on a
/// [`ClientBuilder`] and applies to the link to each gateway.
///
/// ```no_run
/// use std::time::Duration;
/// use wsgate_business::{Cluster, DnsDiscovery, EventKind};
///
/// # async fn run() -> Result<(), wsgate_business::Error> {
/// // Every gateway behind a Kubernetes headless Service, re-resolved every 5 s.
/// let (cluster, mut events) = Cluster::builder(DnsDiscovery::new("wsgate-workers", 8081))
///     .name("chat")
///     .token(std::env::var("WSGATE_WORKER_TOKEN").unwrap_or_default())
///     .events([EventKind::Open, EventKind::Message, EventKind::Close])
///     .request_timeout(Duration::from_secs(5))
///     .rediscover_every(Duration::from_secs(5))
///     .connect()
///     .await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "a builder does nothing until .connect().await"]
pub struct ClusterBuilder {
    discovery: Arc<dyn Discovery>,
    link: ClientBuilder,
    rediscover_every: Duration,
    in_process: Option<Arc<dyn InProcess>>,
}

impl ClusterBuilder {
    pub(crate) fn new(discovery: impl Discovery) -> Self {
        Self {
            discovery: Arc::new(discovery),
            link: ClientBuilder::new(String::new()),
            rediscover_every: DEFAULT_REDISCOVER_EVERY,
            in_process: None,
        }
    }

    /// The name of this business process, shown in the gateways' logs and metrics.
    /// Default `"business"`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.link = self.link.name(name);
        self
    }

    /// The gateways' worker token (one token for all of them). Default empty.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.link = self.link.token(token);
        self
    }

    /// The client connection events this process wants from every gateway. Default (and an
    /// empty list): all. `[EventKind::None]` for a process that only sends commands.
    pub fn events(mut self, kinds: impl IntoIterator<Item = EventKind>) -> Self {
        self.link = self.link.events(kinds);
        self
    }

    /// When `true`, this process answers the handshake hook of every gateway started with
    /// `--authorize-hook` ([`Event::Authorize`](crate::Event::Authorize)); each answer goes
    /// back to the gateway that asked. Default `false`.
    pub fn authorize(mut self, authorize: bool) -> Self {
        self.link = self.link.authorize(authorize);
        self
    }

    /// Events at least once from every gateway: see
    /// [`ClientBuilder::acks`](crate::ClientBuilder::acks). Each event is acknowledged to its
    /// gateway once the application has received it from [`ClusterEvents`](crate::ClusterEvents).
    /// Default `false`.
    pub fn acks(mut self, acks: bool) -> Self {
        self.link = self.link.acks(acks);
        self
    }

    /// With [`acks`](Self::acks): when an event counts as taken; see
    /// [`ClientBuilder::ack_point`](crate::ClientBuilder::ack_point).
    pub fn ack_point(mut self, point: crate::AckPoint) -> Self {
        self.link = self.link.ack_point(point);
        self
    }

    /// Commands sent again after a lost link, with the same command id, so that they are
    /// carried out once: see [`ClientBuilder::retries`](crate::ClientBuilder::retries).
    /// Default `true`.
    pub fn retries(mut self, retries: bool) -> Self {
        self.link = self.link.retries(retries);
        self
    }

    /// How often to ping each gateway. Default: each gateway's `heartbeat_interval_ms`.
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.link = self.link.heartbeat_interval(interval);
        self
    }

    /// How long a gateway may stay silent before its link counts as dead and is
    /// re-established. Default: each gateway's `heartbeat_timeout_ms`.
    pub fn heartbeat_timeout(mut self, timeout: Duration) -> Self {
        self.link = self.link.heartbeat_timeout(timeout);
        self
    }

    /// How long a command waits for each gateway's answer; a gateway that takes longer is
    /// reported as failed. Also bounds discovery, each registration, and how long
    /// [`connect`](Self::connect) waits for the gateways' first attempts. Default 10 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.link = self.link.request_timeout(timeout);
        self
    }

    /// The reconnect backoff of each link: the n-th attempt waits a random time between zero
    /// and `min(max, min * 2^n)`. Default 100 ms .. 5 s.
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.link = self.link.backoff(min, max);
        self
    }

    /// Connects to every gateway with TLS, for gateways started with `--worker-tls`; without
    /// a [`server_name`](TlsOptions::server_name), each gateway's certificate is checked
    /// against the host of its address. Default: plain TCP.
    pub fn tls(mut self, options: TlsOptions) -> Self {
        self.link = self.link.tls(options);
        self
    }

    /// How often to ask discovery again: new addresses get a link, links to addresses no
    /// longer named are closed. A discovery that fails or names nothing keeps the current
    /// gateways. Default 10 s; values below 1 ms are raised to 1 ms.
    pub fn rediscover_every(mut self, every: Duration) -> Self {
        self.rediscover_every = every.max(MIN_DURATION);
        self
    }

    /// A gateway running in this process (a gateway's own APIs): its part of every command
    /// is carried out by calling `gateway` in the caller's task, not sent on its link (see
    /// [`InProcess`]). Its link is still made and registered: it names the gateway's node id,
    /// its limits and its status, and a command goes in-process only while that link is
    /// registered under [`InProcess::node_id`]. Default: none.
    pub fn in_process(mut self, gateway: Arc<dyn InProcess>) -> Self {
        self.in_process = Some(gateway);
        self
    }

    /// Finds the gateways, connects to every one of them and starts rediscovery.
    ///
    /// Runs discovery once, starts one link per gateway and waits until each has registered or
    /// failed its first attempt, at most the request timeout. Resolves once at least one
    /// gateway accepted the registration (its [`Event::Connected`](crate::Event::Connected) is
    /// then already queued in [`ClusterEvents`]); the gateways that are down keep being
    /// retried in the background (see [`Cluster::gateways`]).
    ///
    /// Fails with [`Error::Discovery`] when discovery fails or names no gateway, and otherwise,
    /// when no gateway registered, with the first gateway's error (by address; for example
    /// [`Error::Connect`] or [`Error::Rejected`] for a wrong token), or [`Error::Timeout`] when
    /// none answered in time.
    ///
    /// Must be called from within a Tokio runtime.
    pub async fn connect(self) -> Result<(Cluster, ClusterEvents), Error> {
        let mut config = self.link.into_config();
        config.prepare_tls()?;
        let config = Arc::new(config);
        let discovery_error = |source| Error::Discovery {
            discovery: format!("{:?}", self.discovery),
            source,
        };
        let addrs =
            match tokio::time::timeout(config.request_timeout, self.discovery.discover()).await {
                Ok(Ok(addrs)) => addrs,
                Ok(Err(err)) => return Err(discovery_error(err)),
                Err(_) => {
                    return Err(discovery_error(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no answer within {:?}", config.request_timeout),
                    )));
                }
            };
        if addrs.iter().all(|a| a.trim().is_empty()) {
            return Err(discovery_error(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "it named no gateway",
            )));
        }

        let (event_tx, event_rx) = mpsc::unbounded_channel();
        let members = Arc::new(Members::new(
            Arc::clone(&config),
            event_tx,
            self.in_process.clone(),
        ));
        let deadline = Instant::now() + config.request_timeout;
        let mut first_attempts: FuturesUnordered<_> = members
            .sync(addrs)
            .into_iter()
            .map(|(addr, attempt)| async move {
                let outcome = attempt.await.unwrap_or(Err(Error::Closed));
                (addr, outcome)
            })
            .collect();
        let mut registered = 0usize;
        let mut errors: Vec<(String, Error)> = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, first_attempts.next()).await {
                Ok(Some((_, Ok(())))) => registered += 1,
                Ok(Some((addr, Err(err)))) => errors.push((addr, err)),
                Ok(None) | Err(_) => break,
            }
        }
        let pending = first_attempts.len();
        drop(first_attempts);

        if registered == 0 {
            members
                .shutdown("the cluster client could not connect")
                .await;
            errors.sort_by(|a, b| a.0.cmp(&b.0));
            return Err(errors
                .into_iter()
                .next()
                .map_or(Error::Timeout, |(_, err)| err));
        }
        if !errors.is_empty() || pending > 0 {
            for (addr, err) in &errors {
                warn!(%addr, error = %err, "cluster: gateway not registered yet; retrying it in the background");
            }
            warn!(
                registered,
                failed = errors.len(),
                still_connecting = pending,
                "cluster: connected to some of the gateways; the others are retried in the background"
            );
        }
        info!(gateways = registered, "cluster: connected");
        members.spawn_rediscovery(Arc::clone(&self.discovery), self.rediscover_every);
        Ok((
            Cluster::new(members),
            ClusterEvents::new(event_rx, config.ack_point),
        ))
    }
}
