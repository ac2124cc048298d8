//! Acknowledging events for the application, on a link registered with acks
//! ([`ClientBuilder::acks`](crate::ClientBuilder::acks)).
//!
//! An event counts as taken when the application receives it from [`Events`](crate::Events)
//! or [`ClusterEvents`](crate::ClusterEvents): each event carries a [`Taken`] that the receiver
//! marks, and the session's [`SessionAcks`] batches the acknowledgements with the protocol
//! crate's [`Acker`] (every `EVERY` events, or `DELAY` after the first one not yet
//! acknowledged) and queues each `Ack` on the session's control queue, which the writer sends
//! ahead of commands. A process that dies before receiving an event never acknowledges it, so
//! the gateway hands it to another process (marked redelivered).
//!
//! An event received after its session ended is marked on that session's state, which nothing
//! sends any more: the gateway has already redelivered it, or will, on the new link.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use wsgate_proto::link::acks::Acker;
use wsgate_proto::v1::envelope::Body;
use wsgate_proto::v1::{Ack, Envelope};

/// Acknowledge after this many events at most.
const EVERY: u64 = 64;
/// Acknowledge at most this long after an event was taken.
const DELAY: Duration = Duration::from_millis(20);

/// One session's acknowledgements.
#[derive(Debug)]
pub(crate) struct SessionAcks {
    acker: Mutex<Acker>,
    /// The session's control queue, written ahead of commands.
    control: mpsc::UnboundedSender<Envelope>,
    /// Wakes the session's timer when a delayed acknowledgement becomes due.
    pub(crate) rearm: Notify,
}

impl SessionAcks {
    /// For a session whose gateway allows `window` events unacknowledged: acknowledge at the
    /// latest after a quarter of it, so the window never fills while the application keeps up.
    pub(crate) fn new(window: u32, control: mpsc::UnboundedSender<Envelope>) -> Arc<Self> {
        let every = match window {
            0 => EVERY,
            w => EVERY.min(u64::from(w / 4).max(1)),
        };
        Arc::new(Self {
            acker: Mutex::new(Acker::new(every, DELAY)),
            control,
            rearm: Notify::new(),
        })
    }

    fn acker(&self) -> std::sync::MutexGuard<'_, Acker> {
        self.acker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Event `seq` was taken by the application.
    fn taken(&self, seq: u64) {
        let (due, arm) = {
            let mut acker = self.acker();
            let waiting = acker.poll_timeout().is_some();
            let due = acker.taken(seq, Instant::now());
            (due, !waiting && acker.poll_timeout().is_some())
        };
        if let Some(up_to) = due {
            self.send(up_to);
        } else if arm {
            self.rearm.notify_one();
        }
    }

    /// When the next delayed acknowledgement is due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.acker().poll_timeout()
    }

    /// Time passed: sends the delayed acknowledgement if it is due.
    pub(crate) fn handle_timeout(&self, now: Instant) {
        let due = self.acker().handle_timeout(now);
        if let Some(up_to) = due {
            self.send(up_to);
        }
    }

    fn send(&self, up_to: u64) {
        // Fails only once the session has ended; the gateway then redelivers instead.
        let _ = self.control.send(Envelope {
            body: Some(Body::Ack(Ack { up_to })),
            ..Default::default()
        });
    }
}

/// What the receiver marks when the application takes an event of a link with acks.
#[derive(Debug)]
pub(crate) struct Taken {
    acks: Arc<SessionAcks>,
    seq: u64,
}

impl Taken {
    /// `None` for an event without a number (a link without acks).
    pub(crate) fn of(acks: Option<&Arc<SessionAcks>>, seq: u64) -> Option<Self> {
        let acks = acks?.clone();
        (seq > 0).then_some(Self { acks, seq })
    }

    pub(crate) fn mark(self) {
        self.acks.taken(self.seq);
    }
}
