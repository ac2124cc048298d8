//! The handshake hook: a gateway running with `--authorize-hook` asks a business process that
//! registered with [`ClientBuilder::authorize`](crate::ClientBuilder::authorize) whether to
//! accept each client WebSocket handshake.
//!
//! Each question arrives as [`Event::Authorize`](crate::Event::Authorize) holding an
//! [`AuthorizeCall`]. The call remembers the link (and the registration on it) the question came
//! on, so the answer goes back to the gateway that asked even when a process holds links to
//! several gateways. The gateway waits at most `--authorize-timeout` (default 3 s) and then
//! applies `--authorize-fallback` (default deny), so answer promptly; a call dropped without an
//! answer is logged as a warning.

use std::fmt;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use wsgate_proto::v1::envelope::Body;
use wsgate_proto::v1::{Authorize, AuthorizeReply};

use crate::error::Error;
use crate::outgoing::{Meta, Outgoing, OutgoingKind};

/// One client handshake waiting for this process's decision.
///
/// Answer exactly once with [`allow`](Self::allow), [`deny`](Self::deny) or
/// [`reply`](Self::reply). The answer goes back on the link the question came on; it can be
/// sent from any task (an `AuthorizeCall` is `Send`), for example after a database lookup.
///
/// ```no_run
/// use wsgate_business::{Client, Event};
///
/// # async fn run() -> Result<(), wsgate_business::Error> {
/// let (client, mut events) = Client::builder("127.0.0.1:8081")
///     .name("auth")
///     .authorize(true)
///     .connect()
///     .await?;
/// while let Some(event) = events.recv().await {
///     if let Event::Authorize(call) = event {
///         // A real process would check a cookie or an API key here.
///         match call.request.headers.get("x-api-key").map(String::as_str) {
///             Some("let-me-in") => call.allow("alice").await?,
///             Some(_) => call.deny(403, "unknown API key").await?,
///             None => call.deny(401, "send an X-Api-Key header").await?,
///         }
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[must_use = "the gateway waits for an answer: call .allow(), .deny() or .reply()"]
pub struct AuthorizeCall {
    /// What the client sent: address, path, query string, headers, and the user id of a
    /// verified JWT when the gateway checks JWTs too.
    pub request: Authorize,
    /// `None` once answered.
    responder: Option<Responder>,
}

/// How to answer on the registration the question came on.
pub(crate) struct Responder {
    /// The gateway's request id, echoed in the answer.
    pub(crate) request_id: u64,
    /// The node id of the gateway that asked.
    pub(crate) node_id: String,
    /// The command queue of the registration the question came on. It is closed when that
    /// registration ends, so an answer can never reach a later one (where the id means nothing).
    pub(crate) commands: mpsc::Sender<Outgoing>,
    /// How long to wait for room in that queue.
    pub(crate) timeout: Duration,
    /// Cancelled when the client is shut down.
    pub(crate) shutdown: CancellationToken,
}

impl fmt::Debug for AuthorizeCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("AuthorizeCall");
        s.field("request", &self.request);
        if let Some(responder) = &self.responder {
            s.field("request_id", &responder.request_id)
                .field("node_id", &responder.node_id);
        }
        s.field("answered", &self.responder.is_none()).finish()
    }
}

impl AuthorizeCall {
    pub(crate) fn new(request: Authorize, responder: Responder) -> Self {
        Self {
            request,
            responder: Some(responder),
        }
    }

    /// The gateway's request id for this handshake, for logs.
    pub fn request_id(&self) -> u64 {
        self.responder.as_ref().map_or(0, |r| r.request_id)
    }

    /// The node id of the gateway that asked; the connection, if allowed, will be on it.
    pub fn node_id(&self) -> &str {
        self.responder.as_ref().map_or("", |r| r.node_id.as_str())
    }

    /// Accepts the handshake and binds `user_id` to the new connection (it then carries the id
    /// in every event, and overrides a JWT's `sub`). An empty `user_id` accepts a guest (or
    /// keeps the JWT's user, if the gateway verified one).
    ///
    /// To also join topics, preset session data or send a first message, use
    /// [`reply`](Self::reply).
    pub async fn allow(self, user_id: impl Into<String>) -> Result<(), Error> {
        self.reply(AuthorizeReply {
            allow: true,
            user_id: user_id.into(),
            ..AuthorizeReply::default()
        })
        .await
    }

    /// Refuses the handshake: the client gets HTTP `status` with `reason` as the body.
    /// The gateway uses 401 (also for `0`) or 403; any other status is sent as 403.
    pub async fn deny(self, status: u16, reason: impl Into<String>) -> Result<(), Error> {
        self.reply(AuthorizeReply {
            allow: false,
            status: u32::from(status),
            reason: reason.into(),
            ..AuthorizeReply::default()
        })
        .await
    }

    /// Sends a complete answer.
    ///
    /// ```no_run
    /// # async fn run(call: wsgate_business::AuthorizeCall) -> Result<(), wsgate_business::Error> {
    /// use wsgate_business::{AuthorizeReply, Payload};
    ///
    /// call.reply(AuthorizeReply {
    ///     allow: true,
    ///     user_id: "alice".into(),
    ///     topics: vec!["news".into()],
    ///     session: [("plan".to_owned(), "pro".to_owned())].into(),
    ///     first_message: Some(Payload::text("welcome, alice")),
    ///     ..AuthorizeReply::default()
    /// })
    /// .await
    /// # }
    /// ```
    ///
    /// Resolves once the answer is queued on the link, not when the gateway has applied it.
    /// Fails with [`Error::Disconnected`] when the link the question came on has dropped since
    /// (the gateway has then given up on the handshake; there is nothing to retry),
    /// [`Error::Closed`] after [`Client::shutdown`](crate::Client::shutdown), and
    /// [`Error::Timeout`] when the link's queue stays full for the request timeout.
    pub async fn reply(mut self, reply: AuthorizeReply) -> Result<(), Error> {
        let Some(responder) = self.responder.take() else {
            // Unreachable: every answer consumes the call.
            return Ok(());
        };
        responder.send(reply).await
    }
}

impl Responder {
    async fn send(self, reply: AuthorizeReply) -> Result<(), Error> {
        let outgoing = Outgoing {
            body: Body::AuthorizeReply(reply),
            meta: Meta::default(),
            kind: OutgoingKind::AnswerTo(self.request_id),
        };
        let lost = || {
            if self.shutdown.is_cancelled() {
                Error::Closed
            } else {
                Error::Disconnected
            }
        };
        if self.shutdown.is_cancelled() {
            return Err(Error::Closed);
        }
        match tokio::time::timeout(self.timeout, self.commands.send(outgoing)).await {
            Ok(Ok(())) => {
                debug!(request_id = self.request_id, node_id = %self.node_id, "authorize answer queued");
                Ok(())
            }
            Ok(Err(_)) => Err(lost()),
            Err(_) => Err(Error::Timeout),
        }
    }
}

impl Drop for AuthorizeCall {
    fn drop(&mut self) {
        if let Some(responder) = &self.responder {
            warn!(
                request_id = responder.request_id,
                node_id = %responder.node_id,
                remote_addr = %self.request.remote_addr,
                "an AuthorizeCall was dropped without an answer; the gateway applies its --authorize-fallback after --authorize-timeout. Answer every Event::Authorize with allow(), deny() or reply()"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsgate_proto::v1::{Payload, Ping};

    fn new_call(capacity: usize) -> (AuthorizeCall, mpsc::Receiver<Outgoing>, CancellationToken) {
        let (tx, rx) = mpsc::channel(capacity);
        let shutdown = CancellationToken::new();
        let call = AuthorizeCall::new(
            Authorize {
                remote_addr: "127.0.0.1:5000".into(),
                ..Authorize::default()
            },
            Responder {
                request_id: 42,
                node_id: "gw1".into(),
                commands: tx,
                timeout: Duration::from_millis(50),
                shutdown: shutdown.clone(),
            },
        );
        (call, rx, shutdown)
    }

    fn answer(outgoing: Outgoing) -> (u64, AuthorizeReply) {
        let OutgoingKind::AnswerTo(request_id) = outgoing.kind else {
            panic!("an answer expects no reply, got {:?}", outgoing.kind);
        };
        match outgoing.body {
            Body::AuthorizeReply(reply) => (request_id, reply),
            other => panic!("expected AuthorizeReply, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn allow_binds_the_user_under_the_gateways_request_id() {
        let (call, mut rx, _) = new_call(1);
        assert_eq!(call.request_id(), 42);
        assert_eq!(call.node_id(), "gw1");
        call.allow("alice").await.expect("queued");
        let (id, reply) = answer(rx.recv().await.expect("sent"));
        assert_eq!(id, 42);
        assert_eq!(
            reply,
            AuthorizeReply {
                allow: true,
                user_id: "alice".into(),
                ..AuthorizeReply::default()
            }
        );
    }

    #[tokio::test]
    async fn deny_carries_status_and_reason() {
        let (call, mut rx, _) = new_call(1);
        call.deny(403, "banned").await.expect("queued");
        let (id, reply) = answer(rx.recv().await.expect("sent"));
        assert_eq!(id, 42);
        assert!(!reply.allow);
        assert_eq!(reply.status, 403);
        assert_eq!(reply.reason, "banned");
    }

    #[tokio::test]
    async fn reply_sends_the_whole_answer() {
        let (call, mut rx, _) = new_call(1);
        let full = AuthorizeReply {
            allow: true,
            user_id: "bob".into(),
            topics: vec!["news".into()],
            session: [("k".to_owned(), "v".to_owned())].into(),
            first_message: Some(Payload::text("hi")),
            ..AuthorizeReply::default()
        };
        call.reply(full.clone()).await.expect("queued");
        assert_eq!(answer(rx.recv().await.expect("sent")).1, full);
    }

    #[tokio::test]
    async fn answering_after_the_link_dropped_fails() {
        let (call, rx, _) = new_call(1);
        drop(rx);
        assert!(matches!(call.allow("").await, Err(Error::Disconnected)));

        let (call, mut rx, _) = new_call(1);
        rx.close();
        assert!(matches!(
            call.deny(401, "no").await,
            Err(Error::Disconnected)
        ));

        let (call, _rx, shutdown) = new_call(1);
        shutdown.cancel();
        assert!(matches!(call.allow("x").await, Err(Error::Closed)));
    }

    #[test]
    fn dropping_an_unanswered_call_does_not_panic() {
        let (call, _rx, _) = new_call(1);
        drop(call);
    }

    #[tokio::test]
    async fn a_full_queue_times_out() {
        let (call, _rx, _) = new_call(1);
        // Fill the queue's one slot.
        call.responder
            .as_ref()
            .expect("unanswered")
            .commands
            .try_send(Outgoing {
                body: Body::Ping(Ping {}),
                meta: Meta::default(),
                kind: OutgoingKind::Post,
            })
            .expect("room for one");
        assert!(matches!(call.allow("x").await, Err(Error::Timeout)));
    }
}
