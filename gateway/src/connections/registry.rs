//! The live client connections of this gateway, by connection id.
//!
//! Each connection has a small queue of encoded frames (see [`crate::websocket::frame`]) and a
//! control slot for out-of-band closes, both behind the connection's own lock; a queue costs
//! nothing until something is queued. Sends never block: a full queue marks the client a slow
//! consumer and closes it, so one stalled browser cannot hold back a broadcast to everyone
//! else.
//!
//! A queue is bounded twice: in frames (`--send-queue`) and in bytes (`--send-queue-bytes`),
//! the bytes counting what is queued and what the connection has taken out but not yet
//! written, so a client that stops reading holds at most that much, whatever the size of the
//! messages sent to it. One frame larger than the byte bound is still accepted when nothing is
//! pending, so a big message is delivered to a client that reads, alone. Every queue's bytes
//! add up in [`Stats::client_queued_bytes`].

use std::collections::{HashSet, VecDeque};
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use bytes::Bytes;
use dashmap::DashMap;
use wsgate_proto::v1::ClosedBy;

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
    /// For connections a user's new connection pushed past the per-user limit (the
    /// `replace_oldest` policy), whether the new one came by handshake or by `BindUser`.
    pub(crate) fn replaced() -> Self {
        Self {
            code: close_code::REPLACED,
            reason: "replaced by a newer connection of the same user".into(),
            closed_by: ClosedBy::Gateway,
        }
    }
}

/// What the connection's task receives, in order.
#[derive(Debug)]
pub enum Outbound {
    /// An encoded WebSocket frame, shared with every other recipient.
    Frame(Bytes),
    Close(CloseRequest),
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
#[derive(Debug)]
pub struct Conn {
    slot: Mutex<Slot>,
    pub state: ConnState,
    pub info: PeerInfo,
}

/// Behind the connection's lock. The task's wakers live here too, so queueing a frame and
/// waking the task is one lock, not a lock and a separate notifier's.
#[derive(Debug, Default)]
struct Slot {
    queue: VecDeque<Outbound>,
    /// An emptied queue kept for the next swap, so a busy connection alternates between two
    /// buffers instead of allocating one per burst.
    spare: VecDeque<Outbound>,
    close: Option<CloseRequest>,
    /// The task has ended: nothing is queued any more.
    ended: bool,
    /// Bytes of the frames queued and of those taken out but not yet written.
    pending_bytes: usize,
    /// The task, waiting for something queued or a close ([`Conn::next`]).
    next: Option<Waker>,
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

impl Conn {
    pub fn new(id: Arc<str>, info: PeerInfo) -> Self {
        Self {
            slot: Mutex::default(),
            state: ConnState::new(id),
            info,
        }
    }

    /// The connection's id.
    pub fn id(&self) -> &Arc<str> {
        self.state.id()
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks the connection to close now; the first request wins.
    pub fn close(&self, request: CloseRequest) {
        let mut slot = self.slot();
        if slot.close.is_none() {
            slot.close = Some(request);
            // The task may be waiting in two places: for work, and for a close while a write
            // is blocked.
            let (next, closed) = (slot.next.take(), slot.closed.take());
            drop(slot);
            next.into_iter().chain(closed).for_each(Waker::wake);
        }
    }

    /// Waits for a close request.
    pub fn closed(&self) -> impl Future<Output = CloseRequest> + '_ {
        poll_fn(|cx| {
            let mut slot = self.slot();
            match &slot.close {
                Some(req) => Poll::Ready(req.clone()),
                None => {
                    register(&mut slot.closed, cx.waker());
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
            let mut slot = self.slot();
            if let Some(req) = &slot.close {
                return Poll::Ready(Next::Close(req.clone()));
            }
            if !slot.queue.is_empty() {
                let spare = std::mem::take(&mut slot.spare);
                return Poll::Ready(Next::Send(std::mem::replace(&mut slot.queue, spare)));
            }
            register(&mut slot.next, cx.waker());
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
        let bytes: usize = items.iter().map(Outbound::len).sum();
        let mut slot = self.slot();
        if slot.ended {
            return Err(SendOutcome::Unknown);
        }
        if slot.queue.len() + N > limit.frames {
            return Err(SendOutcome::SlowConsumer);
        }
        if slot.pending_bytes > 0 && slot.pending_bytes + bytes > limit.bytes {
            return Err(SendOutcome::SlowConsumer);
        }
        slot.queue.extend(items);
        slot.pending_bytes += bytes;
        let waiting = slot.next.take();
        drop(slot);
        stats.client_queued_bytes.add(bytes as u64);
        if let Some(task) = waiting {
            task.wake();
        }
        Ok(())
    }

    /// `queue`, taken out by [`next`](Conn::next), has been written (`bytes` of it): the
    /// bytes leave the bound, and the emptied queue is given back so the next bursts reuse its
    /// memory (at most two buffers, see [`Slot::spare`]) — unless it is large, so a burst does
    /// not leave an idle connection holding it.
    pub fn written(&self, queue: VecDeque<Outbound>, bytes: usize, stats: &Stats) {
        let mut slot = self.slot();
        let bytes = bytes.min(slot.pending_bytes);
        slot.pending_bytes -= bytes;
        if queue.capacity() <= 16 && !slot.ended {
            if slot.queue.capacity() == 0 {
                slot.queue = queue;
            } else if slot.spare.capacity() == 0 {
                slot.spare = queue;
            }
        }
        drop(slot);
        stats.client_queued_bytes.sub(bytes as u64);
    }

    /// The task has ended: drop what is queued and refuse more.
    pub fn end(&self, stats: &Stats) {
        let mut slot = self.slot();
        slot.ended = true;
        slot.queue = VecDeque::new();
        slot.spare = VecDeque::new();
        slot.next = None;
        slot.closed = None;
        let pending = std::mem::take(&mut slot.pending_bytes);
        drop(slot);
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
        match self {
            Outbound::Frame(f) => f.len(),
            Outbound::Close(_) => 0,
        }
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

    /// Queues an encoded frame for one connection.
    pub fn send(&self, conn_id: &str, frame: &Bytes) -> SendOutcome {
        match self.conns.get(conn_id) {
            Some(conn) => self.offer(&conn, frame),
            None => SendOutcome::Unknown,
        }
    }

    /// Queues an encoded frame for every connection not in `exclude`; returns how many got it.
    pub fn broadcast(&self, frame: &Bytes, exclude: &HashSet<&str>) -> u32 {
        let mut queued = 0;
        for entry in self.conns.iter() {
            if !exclude.is_empty() && exclude.contains(&**entry.key()) {
                continue;
            }
            if self.offer(entry.value(), frame) == SendOutcome::Queued {
                queued += 1;
            }
        }
        queued
    }

    /// Sends `last` (if any) then closes the connection, in queue order so the last message
    /// arrives before the close frame. A full queue closes at once instead.
    pub fn close(&self, conn_id: &str, last: Option<Bytes>, request: CloseRequest) -> bool {
        let Some(conn) = self.get(conn_id) else {
            return false;
        };
        let close = Outbound::Close(request.clone());
        let queued = match last {
            Some(frame) => conn.push(
                [Outbound::Frame(frame), close],
                self.queue_limit,
                &self.stats,
            ),
            None => conn.push([close], self.queue_limit, &self.stats),
        };
        if queued.is_err() {
            conn.close(request);
        }
        true
    }

    /// Queues a frame for a connection already in hand (its own task's control frames too: a
    /// client that sends pings but never reads the pongs fills its queue like any other).
    pub fn offer(&self, conn: &Conn, frame: &Bytes) -> SendOutcome {
        match conn.push(
            [Outbound::Frame(frame.clone())],
            self.queue_limit,
            &self.stats,
        ) {
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
        match self {
            Outbound::Frame(f) => f,
            Outbound::Close(_) => &[],
        }
    }
    fn consume(&mut self, n: usize) {
        if let Outbound::Frame(f) = self {
            bytes::Buf::advance(f, n);
        }
    }
}
