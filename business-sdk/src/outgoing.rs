//! What travels on a registered link's command queue, from the handles that send commands
//! (and the answers to the gateway's Authorize requests) to the link's writer.
//!
//! A leaf, so that both ends of the queue (the link, [`AuthorizeCall`](crate::AuthorizeCall))
//! can name it without naming each other.

use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use tokio::sync::oneshot;
use wsgate_proto::link::body::BodyKind;
use wsgate_proto::v1::{self, ReceiptMode, envelope::Body};

use crate::error::Error;

/// What a request's caller receives: the gateway's `Result`, or why there is none.
pub(crate) type Outcome = Result<v1::Result, Error>;

/// Where a request's [`Outcome`] goes.
pub(crate) type Waiter = oneshot::Sender<Outcome>;

/// One frame on its way to the writer.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) body: Body,
    pub(crate) meta: Meta,
    pub(crate) kind: OutgoingKind,
}

/// What a command carries in its envelope besides the body: its command id, the same on every
/// retry (empty: none), and whether it asks for receipts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) command_id: String,
    pub(crate) receipt: ReceiptMode,
    /// Ask clients to acknowledge (`Envelope.client_ack`).
    pub(crate) client_ack: bool,
}

impl Meta {
    /// The envelope fields for `body`: `command_id` when given, else a fresh one when the
    /// client retries and `body` is a command (queries change nothing and need none).
    pub(crate) fn of(
        body: &Body,
        command_id: Option<&str>,
        retries: bool,
        receipt: ReceiptMode,
        client_ack: bool,
    ) -> Self {
        let command_id = match command_id {
            Some(id) => id.to_owned(),
            None if retries && BodyKind::of(body) == BodyKind::Command => fresh_command_id(),
            None => String::new(),
        };
        Self {
            command_id,
            receipt,
            client_ack,
        }
    }
}

/// What the commands of one client handle carry, as its `with_…` methods set it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Call {
    /// The caller's own command id, for every command of the handle.
    pub(crate) command_id: Option<std::sync::Arc<str>>,
    pub(crate) receipt: ReceiptMode,
    pub(crate) client_ack: bool,
    /// Only this gateway (node id) takes the handle's commands: the others' connections are
    /// left out, neither unknown nor failed.
    pub(crate) only: Option<std::sync::Arc<str>>,
}

impl Call {
    /// The envelope fields of `body` sent through this handle.
    pub(crate) fn meta(&self, body: &Body, retries: bool) -> Meta {
        Meta::of(
            body,
            self.command_id.as_deref(),
            retries,
            self.receipt,
            self.client_ack,
        )
    }

    /// Also asks clients to acknowledge; waits for receipts unless they come later.
    pub(crate) fn with_client_acks(mut self) -> Self {
        if self.receipt == ReceiptMode::None {
            self.receipt = ReceiptMode::Wait;
        }
        self.client_ack = true;
        self
    }
}

/// A command id no other process is likely to choose: 64 random bits for this process, then
/// a counter.
pub(crate) fn fresh_command_id() -> String {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| {
        // The standard library's per-process random hash keys, mixed with the time and pid.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        hasher.write_u128(now.as_nanos());
        hasher.write_u32(std::process::id());
        hasher.finish()
    });
    format!("{prefix:016x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
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
