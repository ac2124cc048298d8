//! The one stream of events from every gateway of a cluster, each tagged with its gateway.
//!
//! Every link driver of a [`Cluster`](crate::Cluster) pushes into the same unbounded queue, so
//! (as with [`Events`](crate::Events)) a slow consumer never stalls heartbeats or replies and
//! awaiting a cluster command inside the event loop cannot deadlock. Events of one client
//! connection come from its one gateway, in order; events of different gateways interleave.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::sync::mpsc;

use crate::events::{AckPoint, Acking, ClusterEvent};
use crate::link::Taken;

/// The receiving end of a cluster's events, returned by
/// [`ClusterBuilder::connect`](crate::ClusterBuilder::connect).
///
/// Use [`ClusterEvents::recv`] or the [`Stream`] implementation. Both end (`None`) once the
/// cluster was shut down and the remaining events were read.
///
/// ```no_run
/// use wsgate_business::{Cluster, Event, StaticDiscovery};
///
/// # async fn run() -> Result<(), wsgate_business::Error> {
/// let discovery: StaticDiscovery = ["10.0.0.1:8081", "10.0.0.2:8081"].into_iter().collect();
/// let (cluster, mut events) = Cluster::builder(discovery).name("echo").connect().await?;
/// while let Some(ev) = events.recv().await {
///     match ev.event {
///         Event::Message(msg) => {
///             if let Some(payload) = msg.payload {
///                 cluster.single_cast(msg.conn_id, payload).await?;
///             }
///         }
///         Event::Draining { .. } => eprintln!("gateway {} is shutting down", ev.node_id),
///         _ => {}
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ClusterEvents {
    rx: mpsc::UnboundedReceiver<(ClusterEvent, Option<Taken>)>,
    acking: Acking,
}

impl ClusterEvents {
    pub(crate) fn new(
        rx: mpsc::UnboundedReceiver<(ClusterEvent, Option<Taken>)>,
        point: AckPoint,
    ) -> Self {
        Self {
            rx,
            acking: Acking::new(point),
        }
    }

    /// The next event, or `None` once the cluster was shut down and every event was read.
    /// With [`acks`](crate::ClusterBuilder::acks), this acknowledges the event it returns
    /// ([`AckPoint::Received`]) or the one it returned before ([`AckPoint::Handled`]).
    pub async fn recv(&mut self) -> Option<ClusterEvent> {
        self.acking.handled();
        let item = self.rx.recv().await;
        self.acking.next(item)
    }

    /// The next event if one is already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<ClusterEvent> {
        self.acking.handled();
        let item = self.rx.try_recv().ok();
        self.acking.next(item)
    }

    /// With [`AckPoint::Handled`]: the event last received is handled; acknowledge it now.
    pub fn handled(&mut self) {
        self.acking.handled();
    }
}

impl Stream for ClusterEvents {
    type Item = ClusterEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClusterEvent>> {
        self.acking.handled();
        let item = std::task::ready!(self.rx.poll_recv(cx));
        Poll::Ready(self.acking.next(item))
    }
}
