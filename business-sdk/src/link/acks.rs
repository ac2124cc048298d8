//! Acknowledging events for the application, on a link registered with acks
//! ([`ClientBuilder::acks`](crate::ClientBuilder::acks)).
//!
//! An event counts as taken when the application receives it from [`Events`](crate::Events)
//! or [`ClusterEvents`](crate::ClusterEvents): each event carries a [`Taken`] that the receiver
//! marks, and the session's [`SessionAcks`] batches the acknowledgements with the protocol
//! crate's [`Acker`] (every `EVERY` events, or `DELAY` after the first one not yet
//! acknowledged). With [`AckPoint::Received`](crate::AckPoint) each `Ack` goes on the session's
//! control queue, which the writer sends ahead of commands. With `Handled` it goes on the
//! command queue, behind the commands the application sent while handling the events it
//! covers: the gateway must not count an event as handled before what its handling sent — a
//! process killed in between would lose that command and the event would not come again. When
//! that queue is full the `Ack` waits for the next timer tick (acks are cumulative, so a later
//! one covers it). A process that dies before receiving an event never acknowledges it, so the
//! gateway hands it to another process (marked redelivered).
//!
//! An event received after its session ended is marked on that session's state, which nothing
//! sends any more: the gateway has already redelivered it, or will, on the new link.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc};
use wsgate_proto::link::acks::Acker;
use wsgate_proto::v1::envelope::Body;
use wsgate_proto::v1::{Ack, Envelope};

use crate::outgoing::{Meta, Outgoing, OutgoingKind};

/// Acknowledge after this many events at most.
const EVERY: u64 = 64;
/// Acknowledge at most this long after an event was taken.
const DELAY: Duration = Duration::from_millis(20);
/// How soon an `Ack` that found the command queue full is tried again.
const RETRY: Duration = Duration::from_millis(5);

/// Where a session's `Ack`s go.
#[derive(Debug)]
pub(crate) enum AckRoute {
    /// Ahead of commands (the control queue).
    Ahead(mpsc::UnboundedSender<Envelope>),
    /// Behind the commands already queued (the command queue).
    Behind(mpsc::Sender<Outgoing>),
}

/// One session's acknowledgements.
#[derive(Debug)]
pub(crate) struct SessionAcks {
    acker: Mutex<Acker>,
    route: AckRoute,
    /// An `Ack` the command queue had no room for, and when to try it again.
    unsent: Mutex<Option<(u64, Instant)>>,
    /// Wakes the session's timer when a delayed acknowledgement becomes due.
    pub(crate) rearm: Notify,
}

impl SessionAcks {
    /// For a session whose gateway allows `window` events unacknowledged: acknowledge at the
    /// latest after a quarter of it, so the window never fills while the application keeps up.
    pub(crate) fn new(window: u32, route: AckRoute) -> Arc<Self> {
        let every = match window {
            0 => EVERY,
            w => EVERY.min(u64::from(w / 4).max(1)),
        };
        Arc::new(Self {
            acker: Mutex::new(Acker::new(every, DELAY)),
            route,
            unsent: Mutex::new(None),
            rearm: Notify::new(),
        })
    }

    fn unsent(&self) -> std::sync::MutexGuard<'_, Option<(u64, Instant)>> {
        self.unsent.lock().unwrap_or_else(PoisonError::into_inner)
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
        let retry = self.unsent().map(|(_, at)| at);
        [self.acker().poll_timeout(), retry]
            .into_iter()
            .flatten()
            .min()
    }

    /// Time passed: sends the delayed acknowledgement if it is due, or the one that found no
    /// room.
    pub(crate) fn handle_timeout(&self, now: Instant) {
        let due = self.acker().handle_timeout(now);
        let retry = self
            .unsent()
            .filter(|(_, at)| *at <= now)
            .map(|(up_to, _)| up_to);
        if let Some(up_to) = due.into_iter().chain(retry).max() {
            self.send(up_to);
        }
    }

    fn send(&self, up_to: u64) {
        let ack = Body::Ack(Ack { up_to });
        match &self.route {
            // Fails only once the session has ended; the gateway then redelivers instead.
            AckRoute::Ahead(control) => {
                let _ = control.send(Envelope {
                    body: Some(ack),
                    ..Default::default()
                });
            }
            AckRoute::Behind(commands) => {
                let outgoing = Outgoing {
                    body: ack,
                    meta: Meta::default(),
                    kind: OutgoingKind::Post,
                };
                let mut unsent = self.unsent();
                match commands.try_send(outgoing) {
                    Ok(()) => {
                        // An older one that waited is covered by this one.
                        if unsent.is_some_and(|(u, _)| u <= up_to) {
                            *unsent = None;
                        }
                    }
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        let up_to = unsent.map_or(up_to, |(u, _)| u.max(up_to));
                        *unsent = Some((up_to, Instant::now() + RETRY));
                        drop(unsent);
                        self.rearm.notify_one();
                    }
                    // The session has ended; the gateway redelivers instead.
                    Err(mpsc::error::TrySendError::Closed(_)) => *unsent = None,
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn up_to(outgoing: &Outgoing) -> Option<u64> {
        match &outgoing.body {
            Body::Ack(a) => Some(a.up_to),
            _ => None,
        }
    }

    /// With `Handled`, an `Ack` goes behind the commands queued before it, and one that finds
    /// the queue full is sent at the next tick instead of being lost.
    #[test]
    fn behind_acks_follow_queued_commands_and_wait_for_room() {
        let (tx, mut rx) = mpsc::channel(2);
        let acks = SessionAcks::new(4, AckRoute::Behind(tx.clone()));
        // Window 4: an Ack every event.
        tx.try_send(Outgoing {
            body: Body::Ping(Default::default()),
            meta: Meta::default(),
            kind: OutgoingKind::Post,
        })
        .expect("room for a command");
        acks.taken(1);
        let first = rx.try_recv().expect("the command");
        assert_eq!(
            up_to(&first),
            None,
            "the command the handling sent comes first"
        );
        assert_eq!(up_to(&rx.try_recv().expect("the ack")), Some(1));

        // Fill the queue: the next Ack waits.
        for _ in 0..2 {
            tx.try_send(Outgoing {
                body: Body::Ping(Default::default()),
                meta: Meta::default(),
                kind: OutgoingKind::Post,
            })
            .expect("room");
        }
        acks.taken(2);
        let retry_at = acks.poll_timeout().expect("a retry is due");
        let _ = rx.try_recv();
        let _ = rx.try_recv();
        acks.handle_timeout(retry_at);
        assert_eq!(up_to(&rx.try_recv().expect("the ack, later")), Some(2));
        assert!(acks.poll_timeout().is_none(), "nothing left to send");
    }
}
