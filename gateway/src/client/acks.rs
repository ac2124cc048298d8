//! The acknowledgements a `wsgate.stream.v1` client owes: the receipt slots of messages it was
//! asked to acknowledge (`Envelope.client_ack`, docs/streams.md) and has been written, each
//! settled as acknowledged when the client answers with its ack id, or as unacknowledged when
//! `--client-ack-timeout` passes first or the connection ends (a slot settles when dropped).
//!
//! Owned by the connection's task and made on the first such message, so a connection that is
//! never asked costs one empty pointer. At most [`MAX_AWAITING`] are held: past that the
//! oldest is settled as unacknowledged at once, so a client that never answers holds bounded
//! memory.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::connections::receipts::Slot;

/// Unacknowledged messages one connection holds at most.
pub(crate) const MAX_AWAITING: usize = 4096;

/// What one client has yet to acknowledge.
#[derive(Debug)]
pub(crate) struct Awaiting {
    timeout: Duration,
    /// By ack id.
    slots: HashMap<u64, Slot>,
    /// Ack ids in the order written, with when each one's time is up.
    order: VecDeque<(Instant, u64)>,
    /// Wakes the task when the oldest one's time is up.
    timer: Pin<Box<Sleep>>,
}

impl Awaiting {
    pub(crate) fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            slots: HashMap::new(),
            order: VecDeque::new(),
            timer: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    /// A message with `ack` was written at `now`: its slot waits for the client.
    pub(crate) fn hold(&mut self, ack: u64, slot: Slot, now: Instant) {
        if self.slots.len() >= MAX_AWAITING {
            self.pop_oldest();
        }
        let deadline = now + self.timeout;
        if self.order.is_empty() {
            self.timer.as_mut().reset(deadline);
        }
        self.order.push_back((deadline, ack));
        // An id held twice (the same cast queued twice for this connection): the first
        // acknowledgement settles the later slot, the earlier one settles now as unacked.
        self.slots.insert(ack, slot);
    }

    /// The client acknowledged `ids`; how many settled a slot (unknown ids are ignored).
    pub(crate) fn ack(&mut self, ids: &[u64]) -> u64 {
        let mut settled = 0;
        for id in ids {
            if let Some(mut slot) = self.slots.remove(id) {
                slot.acked();
                settled += 1;
            }
        }
        settled
    }

    /// Settles, as unacknowledged, every slot whose time is up at `now`.
    pub(crate) fn expire(&mut self, now: Instant) {
        while self.order.front().is_some_and(|(at, _)| *at <= now) {
            self.pop_oldest();
        }
        if let Some((at, _)) = self.order.front() {
            self.timer.as_mut().reset(*at);
        }
    }

    /// Whether anything is held (the timer is only polled then).
    pub(crate) fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Waits until the oldest one's time is up.
    pub(crate) async fn due(&mut self) {
        self.timer.as_mut().await;
    }

    fn pop_oldest(&mut self) {
        if let Some((_, id)) = self.order.pop_front() {
            // Dropped: settles as unacknowledged (or was acknowledged already).
            self.slots.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connections::receipts::Receipts;
    use wsgate_proto::v1::Delivery;

    #[tokio::test]
    async fn acked_in_time_unacked_after_and_bounded() {
        let receipts = Receipts::new();
        let mut awaiting = Awaiting::new(Duration::from_millis(50));
        let now = Instant::now();
        for (id, conn) in [(1, "a"), (2, "b"), (3, "c")] {
            let mut slot = receipts.slot(conn.into());
            slot.unacked();
            awaiting.hold(id, slot, now);
        }
        assert_eq!(awaiting.ack(&[2, 99]), 1, "an unknown id is ignored");
        awaiting.due().await;
        awaiting.expire(Instant::now());
        assert!(awaiting.is_empty());
        receipts.seal();
        let got: Vec<(String, Delivery)> = receipts
            .all()
            .await
            .into_iter()
            .map(|r| (r.conn_id.clone(), r.delivery()))
            .collect();
        assert_eq!(
            got,
            [
                ("b".into(), Delivery::Acked),
                ("a".into(), Delivery::Unacked),
                ("c".into(), Delivery::Unacked)
            ]
        );

        let receipts = Receipts::new();
        for id in 0..(MAX_AWAITING as u64 + 10) {
            let mut slot = receipts.slot("x".into());
            slot.unacked();
            awaiting.hold(id, slot, Instant::now());
        }
        assert_eq!(awaiting.slots.len(), MAX_AWAITING, "the oldest went first");
    }
}
