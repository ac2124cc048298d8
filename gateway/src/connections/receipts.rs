//! Receipts: what became of one cast's frame for each connection it was meant for — written to
//! the client's socket, gone before the cast, or dropped unwritten (`Envelope.receipt`).
//!
//! A cast that asks for receipts queues, with its frame, a [`Slot`] per connection. The slot
//! travels in the connection's queue and settles exactly once: as written when the connection's
//! task has handed the whole frame to the socket ([`Slot::written`], then dropped), as dropped
//! when it is dropped any other way — a full queue refused it, the connection ended with it
//! still queued, the write failed. Settling on drop is what makes "every target gets one
//! outcome" hold on every path, however a connection ends. A connection unknown at the time of
//! the cast is recorded as gone and gets no slot.
//!
//! The business asked either to wait for every outcome (the `Result` lists them) or to have
//! them sent later; both read [`Receipts::all`] once the cast has queued everything
//! ([`Receipts::seal`]). A cast that also asks clients to acknowledge (`Envelope.client_ack`)
//! gives a `wsgate.stream.v1` client's slot back to its connection once written: the
//! connection settles it as acknowledged when the client answers, and as unacknowledged when
//! the client's time (`--client-ack-timeout`) is up or the connection ends
//! ([`crate::client::acks`]).

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;
use wsgate_proto::v1::{Delivery, Receipt};

/// The outcomes of one cast, filling in as its frames are written or dropped.
#[derive(Debug, Default)]
pub(crate) struct Receipts {
    inner: Mutex<Collected>,
    settled: Notify,
}

#[derive(Debug, Default)]
struct Collected {
    /// Settled outcomes; the ids become strings only in [`Receipts::all`], off the
    /// connections' write path.
    outcomes: Vec<(Arc<str>, Delivery)>,
    /// Slots handed out and not settled yet.
    pending: usize,
    /// The cast has queued everything: no slot is handed out any more.
    sealed: bool,
}

impl Receipts {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// `conn_id` was not connected when the cast ran.
    pub(crate) fn gone(&self, conn_id: &str) {
        self.lock().outcomes.push((conn_id.into(), Delivery::Gone));
    }

    /// A slot for the frame queued (or about to be) for `conn_id`.
    pub(crate) fn slot(self: &Arc<Self>, conn_id: Arc<str>) -> Slot {
        self.lock().pending += 1;
        Slot {
            receipts: self.clone(),
            conn_id: Some(conn_id),
            delivery: Delivery::Dropped,
        }
    }

    /// The cast has queued its frame for every target.
    pub(crate) fn seal(&self) {
        self.lock().sealed = true;
        self.settled.notify_waiters();
    }

    /// Every outcome, once every slot has settled (after [`seal`](Self::seal)); in the order
    /// they settled.
    pub(crate) async fn all(&self) -> Vec<Receipt> {
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            {
                let mut inner = self.lock();
                if inner.sealed && inner.pending == 0 {
                    let outcomes = std::mem::take(&mut inner.outcomes);
                    drop(inner);
                    return outcomes
                        .into_iter()
                        .map(|(conn_id, delivery)| Receipt {
                            conn_id: conn_id.to_string(),
                            delivery: delivery as i32,
                        })
                        .collect();
                }
            }
            settled.await;
        }
    }

    fn settle(&self, conn_id: Arc<str>, delivery: Delivery) {
        let mut inner = self.lock();
        inner.outcomes.push((conn_id, delivery));
        inner.pending -= 1;
        let done = inner.sealed && inner.pending == 0;
        drop(inner);
        if done {
            self.settled.notify_waiters();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Collected> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection's part of a cast with receipts, settled once when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    receipts: Arc<Receipts>,
    /// Taken by the drop that settles it.
    conn_id: Option<Arc<str>>,
    delivery: Delivery,
}

impl Slot {
    /// The frame was handed to the client's socket in full.
    pub(crate) fn written(&mut self) {
        self.delivery = Delivery::Written;
    }

    /// The frame was written and the client asked to acknowledge it: unacknowledged until
    /// [`acked`](Slot::acked).
    pub(crate) fn unacked(&mut self) {
        self.delivery = Delivery::Unacked;
    }

    /// The client acknowledged it.
    pub(crate) fn acked(&mut self) {
        self.delivery = Delivery::Acked;
    }
}

/// Ack ids, one per cast that asks clients to acknowledge; unique in this process.
pub(crate) fn next_ack_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(conn_id) = self.conn_id.take() {
            self.receipts.settle(conn_id, self.delivery);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_target_gets_one_outcome_on_every_path() {
        let receipts = Receipts::new();
        receipts.gone("gw-a");
        let mut written = receipts.slot("gw-b".into());
        let dropped = receipts.slot("gw-c".into());
        let late = receipts.slot("gw-d".into());
        receipts.seal();
        written.written();
        drop(written);
        drop(dropped);
        let waiter = tokio::spawn({
            let receipts = receipts.clone();
            async move { receipts.all().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one slot is still queued");
        drop(late);
        let all = waiter.await.expect("outcomes");
        let got: Vec<(&str, Delivery)> = all
            .iter()
            .map(|r| (r.conn_id.as_str(), r.delivery()))
            .collect();
        assert_eq!(
            got,
            [
                ("gw-a", Delivery::Gone),
                ("gw-b", Delivery::Written),
                ("gw-c", Delivery::Dropped),
                ("gw-d", Delivery::Dropped),
            ]
        );
    }
}
