//! The authorize hook: the gateway asks a business process whether a handshake may proceed.
//!
//! The question goes to one of the business processes that registered with `authorize = true`,
//! in turn, under a request id the gateway owns; the answer comes back on that link and is
//! matched here. No process to ask, or no answer in time, is a `NoAnswer` and the configured
//! fallback decides.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use wsgate_proto::v1::{Authorize, AuthorizeReply, Envelope, envelope::Body};

use crate::links::Links;

/// What to do when the hook gives no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Fallback {
    /// Refuse the connection with 503.
    Deny,
    /// Let it in as a guest (plus whatever a JWT established).
    Allow,
}

/// The hook's verdict on one handshake.
#[derive(Debug)]
pub(crate) enum Decision {
    Allow(AuthorizeReply),
    Deny { status: u16, reason: String },
    NoAnswer(String),
}

/// Questions in flight, by the gateway's request id.
#[derive(Debug, Default)]
pub(crate) struct AuthHook {
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<AuthorizeReply, String>>>>,
    next_id: AtomicU64,
}

impl AuthHook {
    pub(crate) async fn ask(
        &self,
        links: &Links,
        question: Authorize,
        timeout: Duration,
    ) -> Decision {
        let Some(link) = links.next_authorizer() else {
            return Decision::NoAnswer(
                "no business process is registered to authorize connections".into(),
            );
        };
        // The gateway's own id space: the answer is told apart by its body, AuthorizeReply.
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id, tx);
        let env = Envelope {
            request_id: id,
            body: Some(Body::Authorize(question)),
            ..Default::default()
        };
        let answer = async {
            link.send(env).await.ok()?;
            rx.await.ok()
        };
        let reply = tokio::time::timeout(timeout, answer).await;
        self.lock().remove(&id);
        match reply {
            Ok(Some(Ok(reply))) if reply.allow => Decision::Allow(reply),
            Ok(Some(Err(error))) => Decision::NoAnswer(format!(
                "business process {:?} answered with an error: {error}",
                link.name
            )),
            Ok(Some(Ok(reply))) => Decision::Deny {
                status: if reply.status == 0 || reply.status == 401 {
                    401
                } else {
                    403
                },
                reason: if reply.reason.is_empty() {
                    "not authorized".into()
                } else {
                    reply.reason
                },
            },
            Ok(None) => Decision::NoAnswer(format!(
                "business process {:?} went away before answering",
                link.name
            )),
            Err(_) => Decision::NoAnswer(format!(
                "no answer from business process {:?} within {timeout:?}",
                link.name
            )),
        }
    }

    /// Delivers an answer from a business process; false when nobody waits for it any more.
    /// `Err` when the business process answered the question with an Error frame.
    pub(crate) fn answer(&self, request_id: u64, reply: Result<AuthorizeReply, String>) -> bool {
        match self.lock().remove(&request_id) {
            Some(tx) => tx.send(reply).is_ok(),
            None => false,
        }
    }

    #[allow(clippy::type_complexity)]
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Result<AuthorizeReply, String>>>>
    {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}
