//! What travels on a registered link's command queue, from the handles that send commands
//! (and the answers to the gateway's Authorize requests) to the link's writer.
//!
//! A leaf, so that both ends of the queue (the link, [`AuthorizeCall`](crate::AuthorizeCall))
//! can name it without naming each other.

use std::time::Instant;

use tokio::sync::oneshot;
use wsgate_proto::v1::{self, envelope::Body};

use crate::error::Error;

/// What a request's caller receives: the gateway's `Result`, or why there is none.
pub(crate) type Outcome = Result<v1::Result, Error>;

/// Where a request's [`Outcome`] goes.
pub(crate) type Waiter = oneshot::Sender<Outcome>;

/// One frame on its way to the writer.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) body: Body,
    pub(crate) kind: OutgoingKind,
}

/// Which request id the frame gets, and whether an answer is awaited.
#[derive(Debug)]
pub(crate) enum OutgoingKind {
    /// Fire and forget: request id 0, no answer.
    Post,
    /// The answer to a request of the gateway's own (`AuthorizeReply`): its id, echoed.
    AnswerTo(u64),
    /// A request: the writer gives it a fresh id and hands the answer to `waiter`, or
    /// [`Error::Timeout`] at `deadline`.
    Request { waiter: Waiter, deadline: Instant },
}
