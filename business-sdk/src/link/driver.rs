//! The driver of one link, and the SDK's one reconnect policy: register, drive the session,
//! and after every lost session register again with backoff, until the link stops.
//!
//! The policy: attempts are spaced by the configured [`Backoff`] (exponential, full jitter),
//! the very first attempt of a link and nothing else going without a wait; a session that
//! lasted [`STABLE_SESSION`] resets the backoff, shorter ones (a gateway that accepts and
//! immediately drops us) keep escalating it. Once a link has been up, every failure is
//! retried (a refused registration too: the operator may fix the gateway's configuration).
//! Before that, [`FirstFailure`] says what the one who started the link wants: a
//! [`Client`](crate::Client)'s `connect()` fails at once, or keeps retrying while the error is
//! retryable (`retry_initial_connect`); a [`Cluster`](crate::Cluster) member reports its first
//! attempt and keeps retrying whatever the error.
//!
//! The driver owns what the handles see: it publishes each session on the [`LinkShared`],
//! keeps its status, and emits [`Event::Connected`] and [`Event::Disconnected`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use wsgate_proto::backoff::Backoff;

use crate::config::Config;
use crate::error::Error;
use crate::events::{Event, EventSink};
use crate::link::dial::{self, Established};
use crate::link::handle::{LinkShared, SessionHandle};
use crate::link::io::{self, Context, End, Session};
use crate::link::status::GatewayState;

/// Commands queued towards the writer before callers wait (backpressure).
const COMMAND_QUEUE: usize = 1024;
/// A session that lasted this long resets the reconnect backoff.
const STABLE_SESSION: Duration = Duration::from_secs(1);

/// What to do when registering fails before the link was ever up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FirstFailure {
    /// Report the error and stop (`Client::connect`).
    GiveUp,
    /// Keep retrying while the error is retryable; report the first that is not, and stop
    /// (`Client::connect` with `retry_initial_connect`).
    RetryWhileRetryable,
    /// Report the first attempt's error and keep retrying whatever the error (a cluster
    /// member: the cluster connects to the gateways that are up and keeps trying the others).
    ReportAndRetry,
}

/// Who waits for the link's first registration, and what they want when it fails.
#[derive(Debug)]
pub(crate) struct FirstAttempt {
    pub(crate) report: oneshot::Sender<Result<(), Error>>,
    pub(crate) on_failure: FirstFailure,
}

/// The driver of one link.
#[derive(Debug)]
pub(crate) struct Link {
    config: Arc<Config>,
    shared: Arc<LinkShared>,
    events: EventSink,
    /// Cancelled when the last handle (`Client` or `Cluster`) is dropped.
    handles_gone: CancellationToken,
}

impl Link {
    pub(crate) fn new(
        config: Arc<Config>,
        shared: Arc<LinkShared>,
        events: EventSink,
        handles_gone: CancellationToken,
    ) -> Self {
        Self {
            config,
            shared,
            events,
            handles_gone,
        }
    }

    /// Registers (the outcome of the first registration goes to `first`) and then drives
    /// sessions, reconnecting after every lost one, until the link stops.
    pub(crate) async fn run(self, first: FirstAttempt) {
        let mut backoff = self.config.backoff();
        let Some(mut session) = self.register(&mut backoff, Some(first)).await else {
            return;
        };
        loop {
            let started = Instant::now();
            let node_id = session.registered.node_id.clone();
            let end = io::drive(self.context(), session, self.stopped()).await;
            match end {
                End::Shutdown => {
                    let reason = self
                        .shared
                        .shutdown_reason()
                        .unwrap_or("the client was shut down")
                        .to_owned();
                    info!(addr = %self.shared.addr(), %reason, "link closed");
                    self.mark_down(reason.clone());
                    self.context()
                        .emit(&node_id, Event::Disconnected { reason });
                    return;
                }
                End::Lost(reason) => {
                    warn!(addr = %self.shared.addr(), %reason, "link lost; reconnecting");
                    self.mark_down(reason.clone());
                    self.context()
                        .emit(&node_id, Event::Disconnected { reason });
                }
            }
            if started.elapsed() >= STABLE_SESSION {
                backoff.reset();
            }
            session = match self.register(&mut backoff, None).await {
                Some(session) => session,
                None => return,
            };
        }
    }

    /// Registers until it works, spacing attempts with the backoff (all but the link's very
    /// first attempt wait first); `None` once the link stops, or when `first` says to give up.
    async fn register(
        &self,
        backoff: &mut Backoff,
        mut first: Option<FirstAttempt>,
    ) -> Option<Session> {
        let addr = self.shared.addr();
        let mut wait = first.is_none();
        loop {
            if wait {
                let delay = backoff.next_delay();
                debug!(%addr, ?delay, "waiting before reconnecting");
                tokio::select! {
                    _ = self.stopped() => return None,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            wait = true;
            let attempt = tokio::select! {
                _ = self.stopped() => {
                    if first.is_some() {
                        self.mark_down("shut down before the first attempt completed");
                    }
                    return None;
                }
                attempt = dial::establish(&self.config, addr) => attempt,
            };
            let err = match attempt {
                Ok(established) => {
                    let session = self.activate(established);
                    if let Some(first) = first {
                        let _ = first.report.send(Ok(()));
                    }
                    return Some(session);
                }
                Err(err) => err,
            };
            self.mark_down(err.to_string());
            let Some(pending) = first.take() else {
                if err.is_retryable() {
                    warn!(%addr, error = %err, "reconnect failed; retrying");
                } else {
                    warn!(%addr, error = %err, "the gateway refused the registration; retrying until it accepts");
                }
                continue;
            };
            match pending.on_failure {
                FirstFailure::RetryWhileRetryable if err.is_retryable() => {
                    warn!(%addr, error = %err, "cannot register with the gateway yet; retrying");
                    first = Some(pending);
                }
                FirstFailure::GiveUp | FirstFailure::RetryWhileRetryable => {
                    let _ = pending.report.send(Err(err));
                    return None;
                }
                FirstFailure::ReportAndRetry => {
                    warn!(%addr, error = %err, "cannot register with the gateway; retrying in the background");
                    let _ = pending.report.send(Err(err));
                }
            }
        }
    }

    /// Publishes a registered connection to the handles and emits [`Event::Connected`].
    fn activate(&self, established: Established) -> Session {
        let Established {
            transport,
            registered,
        } = established;
        let node_id = registered.node_id.clone();
        let (tx, commands) = mpsc::channel(COMMAND_QUEUE);
        self.shared.set_session(Some(SessionHandle {
            tx: tx.clone(),
            node_id: node_id.clone(),
            limits: wsgate_proto::validate::Limits::of(&registered.limits),
            max_frame: wsgate_proto::link::register::peer_max_frame(&registered.limits),
            retries: self.config.retries && registered.limits.command_ids > 0,
        }));
        self.shared.set_status(|status| {
            status.state = GatewayState::Up;
            status.node_id = Some(node_id.clone());
            status.last_error = None;
        });
        info!(addr = %self.shared.addr(), %node_id, name = %self.config.name, "registered with the gateway");
        self.context().emit(
            &node_id,
            Event::Connected {
                node_id: node_id.clone(),
            },
        );
        Session {
            transport,
            registered,
            commands,
            answers: tx,
        }
    }

    /// Resolves when the driver should stop: the link was shut down, or every handle and the
    /// events receiver were dropped. (With only the handles gone, events keep flowing; with
    /// only the events receiver gone, commands keep working.)
    async fn stopped(&self) {
        tokio::select! {
            _ = self.shared.shutdown_token().cancelled() => {}
            _ = async {
                self.handles_gone.cancelled().await;
                self.events.closed().await;
            } => {}
        }
    }

    /// Records that the link is down and why.
    fn mark_down(&self, why: impl Into<String>) {
        let why = why.into();
        self.shared.set_status(|status| {
            status.state = GatewayState::Down;
            status.last_error = Some(why);
        });
    }

    fn context(&self) -> Context<'_> {
        Context {
            config: &self.config,
            shared: &self.shared,
            events: &self.events,
        }
    }
}
