//! The gateways of a cluster: one link (the single-gateway driver of `link/`) per discovered
//! address, kept in step with discovery.
//!
//! [`Members::sync`] starts a link for every new address and shuts down the links of vanished
//! ones; [`Members::rediscover`] calls it every `rediscover_every`. All links share one
//! [`Config`], one event queue ([`ClusterEvents`](crate::ClusterEvents)), and a parent
//! shutdown token, so `Cluster::shutdown` stops them all at once while a single vanished
//! gateway's link can be stopped alone (its token is a child).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use crate::cluster::in_process::InProcess;
use crate::cluster::status::GatewayStatus;
use crate::config::{Config, MIN_DURATION};
use crate::discovery::Discovery;
use crate::error::Error;
use crate::events::{ClusterEvent, EventSink};
use crate::link::{FirstAttempt, FirstFailure, GatewayState, Link, LinkShared, Taken};

/// The outcome of a new link's first registration attempt.
pub(crate) type FirstOutcome = oneshot::Receiver<Result<(), Error>>;

/// The links of a cluster, by address.
#[derive(Debug)]
pub(crate) struct Members {
    config: Arc<Config>,
    /// The gateway of this process, if any, reached by a call (see `in_process`).
    in_process: Option<Arc<dyn InProcess>>,
    state: Mutex<State>,
    /// The parent of every link's shutdown token; cancelled by `Cluster::shutdown`.
    shutdown: CancellationToken,
    /// Cancelled when the last `Cluster` handle is dropped.
    handles_gone: CancellationToken,
    tracker: TaskTracker,
}

#[derive(Debug)]
struct State {
    links: BTreeMap<String, Arc<LinkShared>>,
    /// Where new links deliver events; `None` once shut down (no new links then).
    events: Option<mpsc::UnboundedSender<(ClusterEvent, Option<Taken>)>>,
}

impl Members {
    pub(crate) fn new(
        config: Arc<Config>,
        events: mpsc::UnboundedSender<(ClusterEvent, Option<Taken>)>,
        in_process: Option<Arc<dyn InProcess>>,
    ) -> Self {
        Self {
            config,
            in_process,
            state: Mutex::new(State {
                links: BTreeMap::new(),
                events: Some(events),
            }),
            shutdown: CancellationToken::new(),
            handles_gone: CancellationToken::new(),
            tracker: TaskTracker::new(),
        }
    }

    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The in-process gateway, when it is the one registered as `node_id`.
    pub(crate) fn in_process(&self, node_id: &str) -> Option<&dyn InProcess> {
        self.in_process
            .as_deref()
            .filter(|gateway| gateway.node_id() == node_id)
    }

    pub(crate) fn is_shut_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Makes the links match `addrs`: starts a link (dialling in the background) for every new
    /// address and shuts down the links of addresses no longer listed. Returns the first
    /// attempts of the new links. Addresses are trimmed; empty ones and repeats are ignored.
    pub(crate) fn sync(&self, addrs: Vec<String>) -> Vec<(String, FirstOutcome)> {
        let wanted: BTreeSet<String> = addrs
            .into_iter()
            .map(|a| a.trim().to_owned())
            .filter(|a| !a.is_empty())
            .collect();
        let mut started = Vec::new();
        let mut removed = Vec::new();
        {
            let mut state = self.lock();
            let Some(events) = state.events.clone() else {
                return started;
            };
            // A draining gateway leaves DNS at once (Kubernetes drops terminating pods), but
            // its link still carries the ConnClose events of its last clients: keep it until
            // the gateway closes it; the next sync after that removes it.
            let vanished: Vec<String> = state
                .links
                .iter()
                .filter(|(addr, link)| {
                    !wanted.contains(*addr) && link.status().state != GatewayState::Draining
                })
                .map(|(addr, _)| addr.clone())
                .collect();
            for addr in vanished {
                if let Some(link) = state.links.remove(&addr) {
                    removed.push(link);
                }
            }
            for addr in wanted {
                if state.links.contains_key(&addr) {
                    continue;
                }
                let shared = Arc::new(LinkShared::new(addr.clone(), self.shutdown.child_token()));
                let link = Link::new(
                    Arc::clone(&self.config),
                    Arc::clone(&shared),
                    EventSink::Cluster(events.clone()),
                    self.handles_gone.clone(),
                );
                let (report, first_rx) = oneshot::channel();
                self.tracker.spawn(link.run(FirstAttempt {
                    report,
                    on_failure: FirstFailure::ReportAndRetry,
                }));
                info!(%addr, "cluster: new gateway, connecting");
                state.links.insert(addr.clone(), shared);
                started.push((addr, first_rx));
            }
        }
        for link in removed {
            info!(addr = %link.addr(), "cluster: gateway no longer discovered, closing its link");
            link.close(format!(
                "the gateway at {} is no longer named by discovery",
                link.addr()
            ));
        }
        started
    }

    /// The links now, ordered by address.
    pub(crate) fn links(&self) -> Vec<Arc<LinkShared>> {
        self.lock().links.values().cloned().collect()
    }

    /// The status of every gateway, ordered by address.
    pub(crate) fn statuses(&self) -> Vec<GatewayStatus> {
        self.links()
            .iter()
            .map(|link| {
                let status = link.status();
                GatewayStatus {
                    addr: link.addr().to_owned(),
                    node_id: status.node_id,
                    state: status.state,
                    last_error: status.last_error,
                }
            })
            .collect()
    }

    /// The last `Cluster` handle is gone: links and rediscovery stop once the events receiver
    /// is dropped too.
    pub(crate) fn handles_gone(&self) {
        self.handles_gone.cancel();
    }

    /// Stops every link (each emits a final `Disconnected` saying `reason`) and rediscovery,
    /// and waits for them. Idempotent.
    pub(crate) async fn shutdown(&self, reason: &str) {
        let links = {
            let mut state = self.lock();
            state.events = None;
            state.links.values().cloned().collect::<Vec<_>>()
        };
        for link in links {
            link.set_shutdown_reason(reason);
        }
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Runs discovery every `every` and syncs the links, until the cluster shuts down (or
    /// every handle and the events receiver are gone). A discovery that fails, times out
    /// (`request_timeout`) or names no gateway changes nothing: the cluster keeps its gateways
    /// rather than drop them all on a DNS hiccup.
    pub(crate) fn spawn_rediscovery(
        self: &Arc<Self>,
        discovery: Arc<dyn Discovery>,
        every: Duration,
    ) {
        let Some(events) = self.lock().events.clone() else {
            return;
        };
        let members = Arc::clone(self);
        self.tracker.spawn(async move {
            let every = every.max(MIN_DURATION);
            let mut ticker = tokio::time::interval_at(Instant::now() + every, every);
            ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let stopped = async {
                tokio::select! {
                    _ = members.shutdown.cancelled() => {}
                    _ = async {
                        members.handles_gone.cancelled().await;
                        events.closed().await;
                    } => {}
                }
            };
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = ticker.tick() => {}
                }
                let timeout = members.config.request_timeout;
                let found = tokio::select! {
                    _ = &mut stopped => return,
                    found = tokio::time::timeout(timeout, discovery.discover()) => found,
                };
                match found {
                    Ok(Ok(addrs)) if addrs.iter().any(|a| !a.trim().is_empty()) => {
                        debug!(?addrs, "cluster: rediscovered gateways");
                        members.sync(addrs);
                    }
                    Ok(Ok(_)) => warn!(
                        ?discovery,
                        "cluster: discovery named no gateway; keeping the current ones"
                    ),
                    Ok(Err(err)) => warn!(
                        ?discovery,
                        error = %err,
                        "cluster: discovery failed; keeping the current gateways"
                    ),
                    Err(_) => warn!(
                        ?discovery,
                        ?timeout,
                        "cluster: discovery did not answer in time; keeping the current gateways"
                    ),
                }
            }
        });
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
