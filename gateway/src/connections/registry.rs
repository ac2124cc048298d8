//! The live client connections of this gateway, by connection id.
//!
//! Each connection has a small queue of encoded frames (see [`crate::websocket::frame`]) behind
//! its own lock, in one cache line with its task's waker (see [`Conn`]), and a control slot for
//! out-of-band closes behind a second one; a queue costs nothing until something is queued. Sends never block: a full queue marks the client a slow
//! consumer and closes it, so one stalled browser cannot hold back a broadcast to everyone
//! else.
//!
//! A queue is bounded twice: in frames (`--send-queue`) and in bytes (`--send-queue-bytes`),
//! the bytes counting what is queued and what the connection has taken out but not yet
//! written, so a client that stops reading holds at most that much, whatever the size of the
//! messages sent to it. One frame larger than the byte bound is still accepted when nothing is
//! pending, so a big message is delivered to a client that reads, alone. Every queue's bytes
//! add up in [`Stats::client_queued_bytes`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use bytes::Bytes;
use dashmap::DashMap;
use wsgate_proto::stream::Position;
use wsgate_proto::v1::ClosedBy;

use crate::connections::message::Message;
use crate::connections::receipts::{Receipts, Slot};
use crate::connections::state::ConnState;
use crate::stats::Stats;
use crate::websocket::close_code;

/// A request to close a connection.
#[derive(Debug, Clone)]
pub struct CloseRequest {
    pub code: u16,
    pub reason: String,
    pub closed_by: ClosedBy,
}

impl CloseRequest {
    /// The gateway's own close: shutdown, timeouts, limits.
    pub(crate) fn gateway(code: u16, reason: &str) -> Self {
        Self {
            code,
            reason: reason.into(),
            closed_by: ClosedBy::Gateway,
        }
    }

    /// For connections a user's new connection pushed past the per-user limit (the
    /// `replace_oldest` policy), whether the new one came by handshake or by `BindUser`.
    pub(crate) fn replaced() -> Self {
        Self::gateway(
            close_code::REPLACED,
            "replaced by a newer connection of the same user",
        )
    }
}

/// What the connection's task receives, in order.
#[derive(Debug)]
pub enum Outbound {
    /// An encoded WebSocket frame, shared with every other recipient.
    Frame(Bytes),
    /// The same, for a cast that asked for receipts: its slot settles when the frame is
    /// written or dropped. Boxed so the common item stays as small as it was.
    Tracked(Box<Tracked>),
    Close(CloseRequest),
}

/// A frame with its receipt slot.
#[derive(Debug)]
pub struct Tracked {
    frame: Bytes,
    slot: Slot,
    /// The ack id the client was asked to answer with: once written, the slot waits for it
    /// ([`Tracked::awaiting`]) instead of settling as written.
    ack: Option<u64>,
}

impl Tracked {
    /// The ack id and slot of a written frame whose client was asked to acknowledge it.
    pub fn awaiting(self) -> Option<(u64, Slot)> {
        let Tracked { slot, ack, .. } = self;
        ack.map(|ack| (ack, slot))
    }
}

impl Outbound {
    /// The encoded frame, if this is one.
    pub fn frame(&self) -> Option<&Bytes> {
        match self {
            Outbound::Frame(f) => Some(f),
            Outbound::Tracked(t) => Some(&t.frame),
            Outbound::Close(_) => None,
        }
    }
}

/// What the connection's handshake told us; fixed for its lifetime.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub remote_addr: SocketAddr,
    /// `X-Forwarded-For` and `X-Real-IP` as received; usually absent, then not allocated.
    pub forwarded_for: Option<Box<str>>,
    pub real_ip: Option<Box<str>>,
    pub connected_at_ms: u64,
}

/// The part of a connection other tasks reach: its queue and out-of-band closes (which must
/// not wait behind a full queue), the state business processes attach, and the handshake
/// facts.
///
/// Laid out for the fan-out: a broadcast touches every connection's `hot` part (its queue, its
/// task's waker, the byte count), which fits one cache line at the start of the `Conn`, so a
/// push costs one line fetched from memory or the other core, not three. What only a close
/// needs is in `cold`, behind its own lock. The test `the_hot_part_is_one_cache_line` keeps it
/// so.
#[derive(Debug)]
#[repr(C, align(64))]
pub struct Conn {
    hot: Mutex<Hot>,
    cold: Mutex<Cold>,
    pub state: ConnState,
    pub info: PeerInfo,
}

/// What every push and every turn of the connection's task take. The task's waker lives
/// here too, so queueing a frame and waking the task is one lock.
#[derive(Debug, Default)]
struct Hot {
    /// The frames queued, in order; the task takes them all at once.
    queue: Vec<Outbound>,
    /// The task, waiting for something queued or a close ([`Conn::next`]).
    next: Option<Waker>,
    /// Bytes of the frames queued and of those taken out but not yet written.
    pending_bytes: usize,
    /// The task has ended: nothing is queued any more.
    ended: bool,
    /// A close was requested; the request is in [`Cold::close`] (stored before this is set).
    closing: bool,
    /// The client speaks the `wsgate.stream.v1` subprotocol: it gets the framed encoding of a
    /// [`Message`]. Fixed at the handshake; here because every push reads it.
    streams: bool,
}

/// What only a close, and a join of a stream, take.
#[derive(Debug, Default)]
struct Cold {
    close: Option<CloseRequest>,
    /// Where a `wsgate.stream.v1` client was in the streams it named at the handshake, kept
    /// until it joins each (see [`Conn::take_position`]); boxed, so a connection that named
    /// none pays one pointer.
    #[allow(clippy::box_collection)]
    // 8 bytes in every connection instead of an empty map's 48
    positions: Option<Box<HashMap<String, Position>>>,
    /// The task, waiting for a close while a write is blocked ([`Conn::closed`]).
    closed: Option<Waker>,
}

/// How much one connection's queue holds at most.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimit {
    pub frames: usize,
    pub bytes: usize,
}

/// What the connection's task should do next.
#[derive(Debug)]
pub enum Next {
    Close(CloseRequest),
    /// Everything queued, taken out at once.
    Send(VecDeque<Outbound>),
}

/// Keeps `waker` in `slot` unless the one there already wakes the same task.
fn register(slot: &mut Option<Waker>, waker: &Waker) {
    if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
        *slot = Some(waker.clone());
    }
}

/// A lock's data, poisoned or not: a panic elsewhere must not take the connection down.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Conn {
    /// A connection; `streams` when it negotiated the `wsgate.stream.v1` subprotocol.
    pub fn new(id: Arc<str>, info: PeerInfo, streams: bool) -> Self {
        Self {
            hot: Mutex::new(Hot {
                streams,
                ..Hot::default()
            }),
            cold: Mutex::default(),
            state: ConnState::new(id),
            info,
        }
    }

    /// The connection's id.
    pub fn id(&self) -> &Arc<str> {
        self.state.id()
    }

    /// Whether the client speaks the `wsgate.stream.v1` subprotocol.
    pub fn streams(&self) -> bool {
        lock(&self.hot).streams
    }

    /// Keeps where the client was in the streams it named at the handshake.
    pub fn set_positions(&self, positions: HashMap<String, Position>) {
        lock(&self.cold).positions = (!positions.is_empty()).then(|| Box::new(positions));
    }

    /// Where the client was in `stream`, once: taken when it joins the stream.
    pub fn take_position(&self, stream: &str) -> Option<Position> {
        let mut cold = lock(&self.cold);
        let positions = cold.positions.as_mut()?;
        let position = positions.remove(stream);
        if positions.is_empty() {
            cold.positions = None;
        }
        position
    }

    /// Asks the connection to close now; the first request wins.
    pub fn close(&self, request: CloseRequest) {
        let mut cold = lock(&self.cold);
        if cold.close.is_some() {
            return;
        }
        cold.close = Some(request);
        let closed = cold.closed.take();
        drop(cold);
        // The task may be waiting in two places: for work, and for a close while a write is
        // blocked. `hot` only once `cold` is released: `next` takes `cold` inside `hot`, and
        // that is the one nesting.
        let mut hot = lock(&self.hot);
        hot.closing = true;
        let next = hot.next.take();
        drop(hot);
        next.into_iter().chain(closed).for_each(Waker::wake);
    }

    /// Waits for a close request.
    pub fn closed(&self) -> impl Future<Output = CloseRequest> + '_ {
        poll_fn(|cx| {
            let mut cold = lock(&self.cold);
            match &cold.close {
                Some(req) => Poll::Ready(req.clone()),
                None => {
                    register(&mut cold.closed, cx.waker());
                    Poll::Pending
                }
            }
        })
    }

    /// Waits for a close request or for something queued (everything queued is taken out).
    /// A push or close after this returned `Pending` wakes the task: the waker is kept under
    /// the same lock they take.
    pub fn next(&self) -> impl Future<Output = Next> + '_ {
        poll_fn(|cx| {
            let mut hot = lock(&self.hot);
            if hot.closing
                && let Some(req) = lock(&self.cold).close.clone()
            {
                return Poll::Ready(Next::Close(req));
            }
            if !hot.queue.is_empty() {
                return Poll::Ready(Next::Send(std::mem::take(&mut hot.queue).into()));
            }
            register(&mut hot.next, cx.waker());
            Poll::Pending
        })
    }

    /// Queues `items` in order, all or none; refused past the limit (see the module doc). An
    /// array, so queueing one frame for one of a broadcast's recipients allocates nothing.
    fn push<const N: usize>(
        &self,
        items: [Outbound; N],
        limit: QueueLimit,
        stats: &Stats,
    ) -> Result<(), SendOutcome> {
        self.push_locked(lock(&self.hot), items, limit, stats)
    }

    /// Queues `msg` in the encoding this client takes, with `slot` when the cast asked for
    /// receipts (the slot is dropped, so settled, after the lock when the push is refused).
    fn push_message(
        &self,
        msg: &Message,
        slot: Option<Slot>,
        limit: QueueLimit,
        stats: &Stats,
    ) -> Result<(), SendOutcome> {
        let hot = lock(&self.hot);
        let streams = hot.streams;
        let frame = msg.frame(streams).clone();
        let item = match slot {
            None => Outbound::Frame(frame),
            Some(slot) => Outbound::Tracked(Box::new(Tracked {
                frame,
                slot,
                ack: msg.ack().filter(|_| streams),
            })),
        };
        self.push_locked(hot, [item], limit, stats)
    }

    /// [`push`](Conn::push) under a lock already taken; the lock is released before anything
    /// refused is dropped.
    fn push_locked<const N: usize>(
        &self,
        mut hot: MutexGuard<'_, Hot>,
        items: [Outbound; N],
        limit: QueueLimit,
        stats: &Stats,
    ) -> Result<(), SendOutcome> {
        let bytes: usize = items.iter().map(Outbound::len).sum();
        let refused = if hot.ended {
            Some(SendOutcome::Unknown)
        } else if hot.queue.len() + N > limit.frames
            || (hot.pending_bytes > 0 && hot.pending_bytes + bytes > limit.bytes)
        {
            Some(SendOutcome::SlowConsumer)
        } else {
            None
        };
        if let Some(refused) = refused {
            drop(hot);
            drop(items);
            return Err(refused);
        }
        hot.queue.extend(items);
        hot.pending_bytes += bytes;
        let waiting = hot.next.take();
        drop(hot);
        stats.client_queued_bytes.add(bytes as u64);
        if let Some(task) = waiting {
            task.wake();
        }
        Ok(())
    }

    /// `queue`, taken out by [`next`](Conn::next), has been written (`bytes` of it): the
    /// bytes leave the bound, and the emptied buffer is given back so the next burst reuses
    /// its memory, unless a push has made a new one meanwhile or it is large (a burst must
    /// not leave an idle connection holding it).
    pub fn written(&self, queue: VecDeque<Outbound>, bytes: usize, stats: &Stats) {
        // Written, so empty: turning it back into a `Vec` moves nothing (and whatever a failed
        // write left is dropped, never queued again).
        let mut buffer = Vec::from(queue);
        buffer.clear();
        let mut hot = lock(&self.hot);
        let bytes = bytes.min(hot.pending_bytes);
        hot.pending_bytes -= bytes;
        if buffer.capacity() <= 16 && !hot.ended && hot.queue.capacity() == 0 {
            hot.queue = buffer;
        }
        drop(hot);
        stats.client_queued_bytes.sub(bytes as u64);
    }

    /// The task has ended: drop what is queued and refuse more.
    pub fn end(&self, stats: &Stats) {
        let mut hot = lock(&self.hot);
        hot.ended = true;
        hot.queue = Vec::new();
        hot.next = None;
        let pending = std::mem::take(&mut hot.pending_bytes);
        drop(hot);
        lock(&self.cold).closed = None;
        stats.client_queued_bytes.sub(pending as u64);
    }
}

/// What happened to one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendOutcome {
    Queued,
    Unknown,
    SlowConsumer,
}

impl Outbound {
    /// Bytes this item takes in a queue.
    fn len(&self) -> usize {
        self.frame().map_or(0, Bytes::len)
    }
}

/// All live connections.
#[derive(Debug)]
pub struct Registry {
    /// By id; the key is the same allocation as the connection's own id.
    conns: DashMap<Arc<str>, Arc<Conn>>,
    /// What a connection may have queued (`--send-queue`, `--send-queue-bytes`).
    queue_limit: QueueLimit,
    stats: Arc<Stats>,
}

impl Registry {
    pub fn new(queue_limit: QueueLimit, stats: Arc<Stats>) -> Self {
        Self {
            conns: DashMap::default(),
            queue_limit,
            stats,
        }
    }

    pub fn insert(&self, conn: Arc<Conn>) {
        self.conns.insert(conn.id().clone(), conn);
    }

    pub fn remove(&self, conn_id: &str) {
        self.conns.remove(conn_id);
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub(crate) fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    pub fn get(&self, conn_id: &str) -> Option<Arc<Conn>> {
        self.conns.get(conn_id).map(|c| c.clone())
    }

    /// One page of connection ids (see [`crate::connections::state::page`]).
    pub fn page(&self, cursor: &str, limit: usize) -> (Vec<String>, String) {
        crate::connections::state::page(
            self.conns.iter().map(|e| e.key().to_string()),
            cursor,
            limit,
        )
    }

    /// Queues a message for one connection, recording its outcome in `receipts` when given.
    pub fn send_with(
        &self,
        conn_id: &str,
        msg: &Message,
        receipts: Option<&Arc<Receipts>>,
    ) -> SendOutcome {
        match self.conns.get(conn_id) {
            Some(conn) => self.deliver(&conn, msg, receipts),
            None => {
                if let Some(receipts) = receipts {
                    receipts.gone(conn_id);
                }
                SendOutcome::Unknown
            }
        }
    }

    /// Queues a message for every connection not in `exclude`; returns how many got it.
    /// With `receipts`, each connection's outcome is recorded there.
    pub fn broadcast(
        &self,
        msg: &Message,
        exclude: &HashSet<&str>,
        receipts: Option<&Arc<Receipts>>,
    ) -> u32 {
        let mut queued = 0;
        for entry in self.conns.iter() {
            if !exclude.is_empty() && exclude.contains(&**entry.key()) {
                continue;
            }
            let conn = entry.value();
            if self.deliver(conn, msg, receipts) == SendOutcome::Queued {
                queued += 1;
            }
        }
        queued
    }

    /// Sends `last` (if any) then closes the connection, in queue order so the last message
    /// arrives before the close frame. A full queue closes at once instead.
    pub fn close(&self, conn_id: &str, last: Option<&Message>, request: CloseRequest) -> bool {
        let Some(conn) = self.get(conn_id) else {
            return false;
        };
        let close = Outbound::Close(request.clone());
        let queued = match last {
            Some(msg) => {
                let hot = lock(&conn.hot);
                let frame = Outbound::Frame(msg.frame(hot.streams).clone());
                conn.push_locked(hot, [frame, close], self.queue_limit, &self.stats)
            }
            None => conn.push([close], self.queue_limit, &self.stats),
        };
        if queued.is_err() {
            conn.close(request);
        }
        true
    }

    /// Asks every connection to close with `request`, at once (what is queued is not written
    /// first); returns how many were asked. The drain's way to close the clients: a
    /// connection's task hears it through its own [`Conn`], as it hears a business process's
    /// close, so no task polls a token shared by every connection on every turn (a lock that
    /// both worker threads took for every delivery).
    pub fn close_all(&self, request: &CloseRequest) -> usize {
        let mut asked = 0;
        for entry in self.conns.iter() {
            entry.value().close(request.clone());
            asked += 1;
        }
        asked
    }

    /// Queues a frame for a connection already in hand (its own task's control frames too: a
    /// client that sends pings but never reads the pongs fills its queue like any other).
    pub fn offer(&self, conn: &Conn, frame: &Bytes) -> SendOutcome {
        self.refused(
            conn,
            conn.push(
                [Outbound::Frame(frame.clone())],
                self.queue_limit,
                &self.stats,
            ),
        )
    }

    /// Queues a message for a connection already in hand, in the encoding it takes.
    pub fn offer_message(&self, conn: &Conn, msg: &Message) -> SendOutcome {
        self.deliver(conn, msg, None)
    }

    /// Queues `msg` for `conn`, with a receipt slot when the cast asked for receipts.
    fn deliver(&self, conn: &Conn, msg: &Message, receipts: Option<&Arc<Receipts>>) -> SendOutcome {
        let slot = receipts.map(|r| r.slot(conn.id().clone()));
        self.refused(
            conn,
            conn.push_message(msg, slot, self.queue_limit, &self.stats),
        )
    }

    /// What a push came to; a full queue closes the connection as a slow consumer (the item
    /// was dropped, which settles a receipt slot as dropped).
    fn refused(&self, conn: &Conn, pushed: Result<(), SendOutcome>) -> SendOutcome {
        match pushed {
            Ok(()) => SendOutcome::Queued,
            Err(SendOutcome::SlowConsumer) => {
                Stats::incr(&self.stats.dropped_slow_consumer);
                conn.close(CloseRequest {
                    code: close_code::SLOW_CONSUMER,
                    reason: "slow consumer: send queue full (--send-queue, --send-queue-bytes)"
                        .into(),
                    closed_by: ClosedBy::Gateway,
                });
                SendOutcome::SlowConsumer
            }
            Err(other) => other,
        }
    }
}

impl crate::websocket::io::Chunk for Outbound {
    fn bytes(&self) -> &[u8] {
        self.frame().map_or(&[], |f| f)
    }
    fn consume(&mut self, n: usize) {
        match self {
            Outbound::Frame(f) => bytes::Buf::advance(f, n),
            Outbound::Tracked(t) => bytes::Buf::advance(&mut t.frame, n),
            Outbound::Close(_) => {}
        }
    }
    fn finish(self) -> Option<Self> {
        match self {
            Outbound::Tracked(mut t) if t.ack.is_some() => {
                // Written: unacknowledged until the client answers (or its time is up).
                t.slot.unacked();
                Some(Outbound::Tracked(t))
            }
            Outbound::Tracked(mut t) => {
                t.slot.written();
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection without a socket.
    fn conn() -> Conn {
        let info = PeerInfo {
            remote_addr: "127.0.0.1:1".parse().expect("an address"),
            forwarded_for: None,
            real_ip: None,
            connected_at_ms: 0,
        };
        Conn::new("c".into(), info, false)
    }

    #[test]
    fn the_hot_part_is_one_cache_line() {
        assert!(
            std::mem::size_of::<Mutex<Hot>>() <= 64,
            "a push must touch one cache line of the connection, not {} bytes",
            std::mem::size_of::<Mutex<Hot>>()
        );
        assert_eq!(std::mem::align_of::<Conn>(), 64);
        // `repr(C)`: `hot` is the first field, so it starts the line.
        let conn = conn();
        assert_eq!(
            std::ptr::from_ref(&conn.hot).cast::<u8>(),
            std::ptr::from_ref(&conn).cast::<u8>()
        );
    }

    #[test]
    fn a_close_wins_over_what_is_queued_and_wakes_both_waiters() {
        let conn = conn();
        let stats = Stats::default();
        let limit = QueueLimit {
            frames: 4,
            bytes: 1024,
        };
        let frame = || [Outbound::Frame(Bytes::from_static(b"hi"))];
        assert!(conn.push(frame(), limit, &stats).is_ok());
        match futures_util::FutureExt::now_or_never(conn.next()) {
            Some(Next::Send(queue)) => conn.written(queue, 2, &stats),
            other => panic!("the frame is taken out, got {other:?}"),
        }
        assert_eq!(stats.client_queued_bytes.get(), 0);
        assert!(futures_util::FutureExt::now_or_never(conn.next()).is_none());
        assert!(conn.push(frame(), limit, &stats).is_ok());
        conn.close(CloseRequest::replaced());
        conn.close(CloseRequest {
            code: 1000,
            reason: "second".into(),
            closed_by: ClosedBy::Gateway,
        });
        match futures_util::FutureExt::now_or_never(conn.next()) {
            Some(Next::Close(req)) => assert_eq!(req.code, close_code::REPLACED),
            other => panic!("the first close wins, got {other:?}"),
        }
        let closed = futures_util::FutureExt::now_or_never(conn.closed());
        assert_eq!(closed.map(|r| r.code), Some(close_code::REPLACED));
        conn.end(&stats);
        assert_eq!(conn.push(frame(), limit, &stats), Err(SendOutcome::Unknown));
        assert_eq!(
            stats.client_queued_bytes.get(),
            0,
            "ending gives the bytes back"
        );
    }
}
