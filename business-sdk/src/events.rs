//! The stream of things that happen: link state changes and client connection events
//! ([`Event`]), the same tagged with their gateway for a cluster ([`ClusterEvent`]), and the
//! sink every link driver delivers them into ([`EventSink`]).
//!
//! The link driver pushes every event into an unbounded queue and never waits for the consumer,
//! so a slow event loop cannot stall heartbeats or command replies, and awaiting a command's
//! result from inside the event loop cannot deadlock. The price is memory: an event loop that
//! falls behind for long buffers the backlog.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::sync::mpsc;
use wsgate_proto::v1::{ConnClose, ConnMessage, ConnOpen};

use crate::authorize::AuthorizeCall;
use crate::link::Taken;

/// One thing that happened on the link or on a client connection.
///
/// Events of one client connection arrive in order: [`Event::Open`], then [`Event::Message`]s,
/// then [`Event::Close`]. Only the kinds asked for with
/// [`ClientBuilder::events`](crate::ClientBuilder::events) are delivered (link events always are);
/// [`Event::Authorize`] comes only to a process built with
/// [`ClientBuilder::authorize(true)`](crate::ClientBuilder::authorize).
///
/// `Event` is neither `Clone` nor `PartialEq`: an [`Event::Authorize`] holds the one answer to a
/// handshake, which must not be duplicated.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The link is registered with a gateway: after `connect()` and after every reconnect.
    Connected {
        /// The gateway's node id; the connection ids it issues start with it.
        node_id: String,
    },
    /// The link was lost (or the client shut down). In-flight commands have failed with
    /// [`Error::Disconnected`](crate::Error::Disconnected); the SDK reconnects with backoff
    /// unless it was shut down.
    Disconnected {
        /// Why, for logs.
        reason: String,
    },
    /// The gateway is shutting down: it accepts no new clients, is closing the ones it has with
    /// `close_code` (1012 "service restart" when it runs in a cluster, so they reconnect to
    /// another gateway; else 1001), delivers their [`Event::Close`]s, and then closes the link,
    /// at most `drain_timeout_ms` later. Commands for its connections still work until then.
    /// The SDK then reconnects with backoff as after any lost link (the gateway may come back
    /// after a restart); a [`Cluster`](crate::Cluster) meanwhile routes nothing to it.
    Draining {
        /// The WebSocket close code the gateway's clients get.
        close_code: u32,
        /// How long the gateway waits at most before closing the link, in milliseconds.
        drain_timeout_ms: u32,
    },
    /// A client connection was opened.
    Open(ConnOpen),
    /// A client sent a message.
    Message(ConnMessage),
    /// A client connection is gone; always its last event.
    Close(ConnClose),
    /// What became of a cast sent through a handle from
    /// [`Client::with_receipts_later`](crate::Client::with_receipts_later): each target
    /// connection's outcome, in one or more of these (the last with `last` set) per gateway.
    /// `command_id` is the cast's: give it one with
    /// [`with_command_id`](crate::Client::with_command_id) to tell casts apart.
    Receipts {
        /// The cast's command id.
        command_id: String,
        /// Outcomes, in the order they settled.
        receipts: Vec<wsgate_proto::v1::Receipt>,
        /// This gateway sends no more for this cast.
        last: bool,
    },
    /// A client handshake waits for this process's decision (the gateway's `--authorize-hook`).
    /// Answer it with [`AuthorizeCall::allow`], [`AuthorizeCall::deny`] or
    /// [`AuthorizeCall::reply`], promptly: the gateway gives up after `--authorize-timeout`.
    Authorize(AuthorizeCall),
}

/// One event of one gateway of a cluster.
#[derive(Debug)]
pub struct ClusterEvent {
    /// The node id of the gateway it came from (the registration's node id; the connection ids
    /// in the event start with it). The address when the node id is not known yet.
    pub node_id: String,
    /// The worker address of that gateway, as discovery named it.
    pub addr: String,
    /// What happened. [`Event::Connected`] and [`Event::Disconnected`] are per gateway here;
    /// [`Event::Draining`] announces that this gateway is shutting down.
    pub event: Event,
    /// The gateway gave this connection event to another process before, which did not
    /// acknowledge it (it died or stalled): it may have been handled already. Deduplicate by
    /// `conn_id` and [`ConnMessage::seq`]. See [`Events::redelivered`].
    pub redelivered: bool,
}

/// When an event counts as taken, on a link with [`acks`](crate::ClientBuilder::acks): the
/// gateway keeps it until then, and hands it to another process if this one goes away first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AckPoint {
    /// When the application receives it (`recv`, `try_recv`, the stream). A process that dies
    /// while handling an event it received does not get it again. The default.
    #[default]
    Received,
    /// When the application has handled it: when it asks for the next event (or calls
    /// [`Events::handled`] / [`ClusterEvents::handled`](crate::ClusterEvents::handled)). A
    /// process that dies while handling an event — before asking for the next — gets it again
    /// (or another process does), marked redelivered. Handle events one at a time, in the
    /// order received; an application that hands events to other tasks wants `Received`.
    Handled,
}

/// What an events receiver has to acknowledge, per its [`AckPoint`].
#[derive(Debug)]
pub(crate) struct Acking {
    point: AckPoint,
    /// With `Handled`: the event the application has, to mark once it asks for the next.
    held: Option<Taken>,
}

impl Acking {
    pub(crate) fn new(point: AckPoint) -> Self {
        Self { point, held: None }
    }

    /// The application has handled what it received so far.
    pub(crate) fn handled(&mut self) {
        if let Some(t) = self.held.take() {
            t.mark();
        }
    }

    /// The application asks for the next event, which comes with `taken`: `item` is returned.
    pub(crate) fn next<T>(&mut self, item: Option<(T, Option<Taken>)>) -> Option<T> {
        let (item, taken) = item?;
        match self.point {
            AckPoint::Received => {
                if let Some(t) = taken {
                    t.mark();
                }
            }
            AckPoint::Handled => self.held = taken,
        }
        Some(item)
    }
}

/// Where a link driver delivers its events: the one [`Events`] queue of a
/// [`Client`](crate::Client), or the shared [`ClusterEvents`](crate::ClusterEvents) queue of a
/// [`Cluster`](crate::Cluster), where each event is tagged with its gateway.
#[derive(Debug, Clone)]
pub(crate) enum EventSink {
    Client(mpsc::UnboundedSender<((Event, bool), Option<Taken>)>),
    Cluster(mpsc::UnboundedSender<(ClusterEvent, Option<Taken>)>),
}

impl EventSink {
    /// Delivers `event` from the session with `node_id` on the link to `addr`; `false` when
    /// the receiver is gone. `taken` is marked when the application receives it (links with
    /// acks); `redelivered` is the envelope's flag.
    pub(crate) fn send(
        &self,
        node_id: &str,
        addr: &str,
        event: Event,
        (taken, redelivered): (Option<Taken>, bool),
    ) -> bool {
        match self {
            EventSink::Client(tx) => tx.send(((event, redelivered), taken)).is_ok(),
            EventSink::Cluster(tx) => tx
                .send((
                    ClusterEvent {
                        node_id: if node_id.is_empty() { addr } else { node_id }.to_owned(),
                        addr: addr.to_owned(),
                        event,
                        redelivered,
                    },
                    taken,
                ))
                .is_ok(),
        }
    }

    /// Resolves once the receiver is dropped.
    pub(crate) async fn closed(&self) {
        match self {
            EventSink::Client(tx) => tx.closed().await,
            EventSink::Cluster(tx) => tx.closed().await,
        }
    }
}

/// The receiving end of the SDK's events, returned by
/// [`ClientBuilder::connect`](crate::ClientBuilder::connect).
///
/// Use [`Events::recv`] or the [`Stream`] implementation. Both end (`None`) once the client
/// was shut down and the remaining events were read.
///
/// Events are buffered without bound inside the SDK, so it is fine to await commands from
/// inside the event loop:
///
/// ```no_run
/// use wsgate_business::{Client, Event};
///
/// # async fn run() -> Result<(), wsgate_business::Error> {
/// let (client, mut events) = Client::builder("127.0.0.1:8081").connect().await?;
/// while let Some(event) = events.recv().await {
///     match event {
///         Event::Message(msg) => {
///             if let Some(payload) = msg.payload {
///                 client.single_cast(msg.conn_id, payload).await?;
///             }
///         }
///         Event::Disconnected { reason } => eprintln!("link lost: {reason}"),
///         _ => {}
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Events {
    rx: mpsc::UnboundedReceiver<((Event, bool), Option<Taken>)>,
    /// Whether the event last received was redelivered.
    redelivered: bool,
    acking: Acking,
}

impl Events {
    pub(crate) fn new(
        rx: mpsc::UnboundedReceiver<((Event, bool), Option<Taken>)>,
        point: AckPoint,
    ) -> Self {
        Self {
            rx,
            redelivered: false,
            acking: Acking::new(point),
        }
    }

    /// The next event, or `None` once the client was shut down and every event was read.
    /// With [`acks`](crate::ClientBuilder::acks), this acknowledges the event it returns
    /// ([`AckPoint::Received`]) or the one it returned before ([`AckPoint::Handled`]).
    pub async fn recv(&mut self) -> Option<Event> {
        self.acking.handled();
        let item = self.rx.recv().await;
        self.received(item)
    }

    /// The next event if one is already queued, without waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.acking.handled();
        let item = self.rx.try_recv().ok();
        self.received(item)
    }

    /// With [`AckPoint::Handled`]: the event last received is handled; acknowledge it now
    /// rather than when the next is asked for. Nothing otherwise.
    pub fn handled(&mut self) {
        self.acking.handled();
    }

    /// Whether the event last received was given by the gateway to another process before,
    /// which did not acknowledge it (it died or stalled, see
    /// [`acks`](crate::ClientBuilder::acks)): it may have been handled already, so deduplicate
    /// by `conn_id` and [`ConnMessage::seq`]. `false` for every other event.
    pub fn redelivered(&self) -> bool {
        self.redelivered
    }

    fn received(&mut self, item: Option<((Event, bool), Option<Taken>)>) -> Option<Event> {
        let (event, redelivered) = self.acking.next(item)?;
        self.redelivered = redelivered;
        Some(event)
    }
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.acking.handled();
        let item = std::task::ready!(self.rx.poll_recv(cx));
        Poll::Ready(self.received(item))
    }
}
