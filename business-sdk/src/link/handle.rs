//! The handle of one link: what its driver shares with the [`Client`](crate::Client) or
//! [`Cluster`](crate::Cluster) that send commands through it.
//!
//! [`LinkShared`] holds, while registered, the sending end of the current session's command
//! queue ([`SessionHandle`]), the link's [`LinkStatus`], and its shutdown token.
//! [`LinkShared::request_on`] is the one request/reply exchange of the SDK: a caller that
//! finds no session fails fast with [`Error::NotConnected`], and one that waits longer than
//! its timeout gets [`Error::Timeout`]. A command with a command id, to a gateway that
//! remembers them, is not failed when its session ends before the answer: it is sent again,
//! with the same id, on the link's next session to the same gateway, until its timeout — the
//! gateway carries it out once. The driver publishes and withdraws sessions; handles only read
//! them, so data flows from the driver to the handles and commands back through the queue.

use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::debug;
use wsgate_proto::v1::envelope::Body;

use crate::error::Error;
use crate::link::status::{GatewayState, LinkStatus};
use crate::outgoing::{Meta, Outcome, Outgoing, OutgoingKind};

/// The part of a registered session that clients use.
#[derive(Debug, Clone)]
pub(crate) struct SessionHandle {
    pub(crate) tx: mpsc::Sender<Outgoing>,
    pub(crate) node_id: String,
    /// What the gateway's commands may name, as its `RegisterOk` said.
    pub(crate) limits: wsgate_proto::validate::Limits,
    /// The largest frame the gateway takes, as its `RegisterOk` said.
    pub(crate) max_frame: usize,
    /// Commands with an id are sent again after a lost session: the client retries and the
    /// gateway remembers command ids (`Limits.command_ids` > 0).
    pub(crate) retries: bool,
}

/// State shared between a link driver and the handles that send commands through it.
#[derive(Debug)]
pub(crate) struct LinkShared {
    addr: String,
    session: Mutex<Option<SessionHandle>>,
    /// Notified whenever a session is published or withdrawn, for retries waiting for the next.
    session_changed: Notify,
    status: Mutex<LinkStatus>,
    /// Cancelled when this link is shut down (by `Client::shutdown`, `Cluster::shutdown`, or a
    /// cluster dropping a gateway that vanished from discovery).
    shutdown: CancellationToken,
    /// Why it was shut down, for the final [`Event::Disconnected`](crate::Event::Disconnected).
    shutdown_reason: OnceLock<String>,
}

impl LinkShared {
    /// A link to `addr` that stops when `shutdown` is cancelled.
    pub(crate) fn new(addr: String, shutdown: CancellationToken) -> Self {
        Self {
            addr,
            session: Mutex::new(None),
            session_changed: Notify::new(),
            status: Mutex::new(LinkStatus {
                state: GatewayState::Connecting,
                node_id: None,
                last_error: None,
            }),
            shutdown,
            shutdown_reason: OnceLock::new(),
        }
    }

    /// The gateway address this link dials.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// The current session, if registered.
    pub(crate) fn session(&self) -> Option<SessionHandle> {
        self.lock().clone()
    }

    /// The node id of the current registration.
    pub(crate) fn node_id(&self) -> Option<String> {
        self.lock().as_ref().map(|s| s.node_id.clone())
    }

    /// What the link is doing now.
    pub(crate) fn status(&self) -> LinkStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether this link was shut down.
    pub(crate) fn is_shut_down(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// The token cancelled when this link is shut down.
    pub(crate) fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Why the link was shut down, if a reason was given.
    pub(crate) fn shutdown_reason(&self) -> Option<&str> {
        self.shutdown_reason.get().map(String::as_str)
    }

    /// Records why the link is being shut down (the first reason wins). Cancelling the token
    /// is the caller's business: a cluster cancels one parent token for all its links.
    pub(crate) fn set_shutdown_reason(&self, reason: impl Into<String>) {
        let _ = self.shutdown_reason.set(reason.into());
    }

    /// Shuts this link down, saying why.
    pub(crate) fn close(&self, reason: impl Into<String>) {
        self.set_shutdown_reason(reason);
        self.shutdown.cancel();
    }

    /// The current session, or why there is none ([`Error::Closed`], [`Error::NotConnected`]).
    pub(crate) fn current(&self) -> Result<SessionHandle, Error> {
        if self.is_shut_down() {
            return Err(Error::Closed);
        }
        self.session().ok_or(Error::NotConnected)
    }

    /// Sends a command on the current session and waits for the gateway's `Result`, at most
    /// `timeout` in all.
    pub(crate) async fn request(&self, body: Body, meta: &Meta, timeout: Duration) -> Outcome {
        let session = self.current()?;
        self.request_on(&session, body, meta, timeout).await
    }

    /// Like [`request`](Self::request), on a session the caller already picked (a cluster
    /// routes by the session's node id and must send on that very session, and retries only
    /// on a later session to the same node).
    pub(crate) async fn request_on(
        &self,
        session: &SessionHandle,
        body: Body,
        meta: &Meta,
        timeout: Duration,
    ) -> Outcome {
        let deadline = Instant::now() + timeout;
        if meta.command_id.is_empty() || !session.retries {
            return self.exchange(session, body, meta, deadline).await;
        }
        let mut session = session.clone();
        loop {
            let outcome = self.exchange(&session, body.clone(), meta, deadline).await;
            if !matches!(outcome, Err(Error::Disconnected | Error::NotConnected)) {
                return outcome;
            }
            match self.next_session(&session.node_id, deadline).await {
                Some(next) => {
                    debug!(addr = %self.addr, command_id = %meta.command_id, "the session ended before the answer; sending the command again on the next one");
                    session = next;
                }
                None => return outcome,
            }
        }
    }

    /// Waits until `deadline` for a session to the gateway `node_id` other than a closed one;
    /// `None` at the deadline, on shutdown, or when the link registered with another gateway
    /// (a command for one gateway's connections is no business of another's).
    async fn next_session(&self, node_id: &str, deadline: Instant) -> Option<SessionHandle> {
        loop {
            let changed = self.session_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.is_shut_down() {
                return None;
            }
            if let Some(session) = self.session()
                && !session.tx.is_closed()
            {
                return (session.node_id == node_id && session.retries).then_some(session);
            }
            tokio::time::timeout_at(deadline.into(), changed)
                .await
                .ok()?;
        }
    }

    /// One try of a request on `session`, answered or failed by `deadline`.
    async fn exchange(
        &self,
        session: &SessionHandle,
        body: Body,
        meta: &Meta,
        deadline: Instant,
    ) -> Outcome {
        let (waiter, answer) = oneshot::channel();
        // The session gives up on the request at this deadline too, so its table never keeps
        // a caller that has stopped waiting.
        let timeout = deadline.saturating_duration_since(Instant::now());
        let outgoing = Outgoing {
            body,
            meta: meta.clone(),
            kind: OutgoingKind::Request { waiter, deadline },
        };
        let exchange = async {
            session
                .tx
                .send(outgoing)
                .await
                .map_err(|_| self.not_sent())?;
            answer.await.map_err(|_| self.lost())?
        };
        // Bounds the wait for room in the queue as well as for the answer.
        match tokio::time::timeout(timeout, exchange).await {
            Ok(outcome) => outcome,
            Err(_) => {
                debug!(addr = %self.addr, "request timed out");
                Err(Error::Timeout)
            }
        }
    }

    /// Queues a body with request id 0 (no reply) on `session`, waiting at most `timeout` for
    /// room in the queue.
    pub(crate) async fn post_on(
        &self,
        session: &SessionHandle,
        body: Body,
        meta: Meta,
        timeout: Duration,
    ) -> Result<(), Error> {
        let outgoing = Outgoing {
            body,
            meta,
            kind: OutgoingKind::Post,
        };
        match tokio::time::timeout(timeout, session.tx.send(outgoing)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(self.not_sent()),
            Err(_) => Err(Error::Timeout),
        }
    }

    /// The error for a command the link would not take.
    fn not_sent(&self) -> Error {
        if self.is_shut_down() {
            Error::Closed
        } else {
            Error::NotConnected
        }
    }

    /// The error for a command whose reply will never come.
    fn lost(&self) -> Error {
        if self.is_shut_down() {
            Error::Closed
        } else {
            Error::Disconnected
        }
    }

    /// Publishes the registered session (or withdraws it with `None`); for the driver.
    pub(crate) fn set_session(&self, session: Option<SessionHandle>) {
        *self.lock() = session;
        self.session_changed.notify_waiters();
    }

    /// Changes the status; for the driver.
    pub(crate) fn set_status(&self, change: impl FnOnce(&mut LinkStatus)) {
        change(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }

    fn lock(&self) -> MutexGuard<'_, Option<SessionHandle>> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
