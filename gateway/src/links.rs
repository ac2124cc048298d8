//! The registered business processes and the routing of connection events to them.
//!
//! Every event of one client connection goes to the same business process while that process
//! lives: the connection pins the process chosen for its first event. The choice is a
//! rendezvous (highest random weight) hash of the connection id over the live processes that
//! want the event kind, so processes agree on nothing, adding one moves only new connections,
//! and when a process goes away its connections spread evenly over the rest.
//!
//! When no business process is registered at all (the only one is restarting), an event waits
//! up to `--no-business-wait` for one to register instead of being dropped; the connection's
//! reads wait with it, so memory stays bounded by one event per connection. With a process
//! registered that does not want the event's kind, it is dropped as before: waiting would stall
//! every connection of a gateway whose processes want only some kinds.
//!
//! A link's queue is bounded twice: in frames (its channel) and in bytes (`--link-queue-bytes`,
//! a semaphore of bytes taken by every frame queued and given back once it is written). A
//! business process that reads slower than its clients send thus holds back those clients'
//! reads — their sockets fill and they slow down — instead of the gateway's memory growing with
//! every message they send.

use std::hash::Hasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use prost::Message;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use wsgate_proto::v1::{Envelope, EventKind, envelope::Body};

use crate::stats::Stats;
use crate::throttle::Throttle;

/// The name gateways' cluster clients register with; reserved for them.
pub const PEER_LINK_NAME: &str = "wsgate-peer";

/// One registered business process.
#[derive(Debug)]
pub struct Link {
    pub id: u64,
    pub name: String,
    events: u8,
    /// Answers Authorize requests.
    pub authorize: bool,
    /// Acknowledges events (`Register.acks`): its session keeps each one until acknowledged.
    pub acks: bool,
    tx: mpsc::Sender<Envelope>,
    /// Bytes the queue may still take (`--link-queue-bytes` less what is queued).
    room: Semaphore,
    /// What one frame may take of `room` at most: a frame larger than the whole bound waits
    /// for an empty queue instead of forever.
    room_max: u32,
    closed: AtomicBool,
    /// Cancelled once what this link held (its queue, and with acks what it had not
    /// acknowledged) has gone to other links: a connection pinned here sends its next event
    /// only then, so its events stay in order across the move.
    handed_over: CancellationToken,
}

fn event_bit(kind: EventKind) -> u8 {
    1 << (kind as i32 as u8)
}

/// The event kind of an event envelope body.
pub fn event_kind(body: &Body) -> Option<EventKind> {
    match body {
        Body::ConnOpen(_) => Some(EventKind::Open),
        Body::ConnMessage(_) => Some(EventKind::Message),
        Body::ConnClose(_) => Some(EventKind::Close),
        _ => None,
    }
}

/// The connection id an event is about.
pub fn event_conn_id(body: &Body) -> Option<&str> {
    match body {
        Body::ConnOpen(e) => Some(&e.conn_id),
        Body::ConnMessage(e) => Some(&e.conn_id),
        Body::ConnClose(e) => Some(&e.conn_id),
        _ => None,
    }
}

impl Link {
    pub fn new(
        id: u64,
        name: String,
        wanted: &[EventKind],
        authorize: bool,
        acks: bool,
        tx: mpsc::Sender<Envelope>,
        queue_bytes: usize,
    ) -> Self {
        let room_max = u32::try_from(queue_bytes.min(Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
        Self {
            id,
            name,
            events: wanted.iter().fold(0, |acc, k| acc | event_bit(*k)),
            authorize,
            acks,
            tx,
            room: Semaphore::new(room_max as usize),
            room_max,
            closed: AtomicBool::new(false),
            handed_over: CancellationToken::new(),
        }
    }

    /// Everything this link held has gone to other links (or was dropped with no one to take
    /// it); the connections pinned to it may go on. Its session says so when it ends, or its
    /// guard ([`hand_over_guard`](Self::hand_over_guard)) when the session is dropped.
    pub fn handed_over(&self) {
        self.handed_over.cancel();
    }

    /// Says [`handed_over`](Self::handed_over) when dropped, however the session ends.
    pub fn hand_over_guard(&self) -> tokio_util::sync::DropGuard {
        self.handed_over.clone().drop_guard()
    }

    /// What `env` takes of the queue's byte bound.
    fn cost(&self, env: &Envelope) -> u32 {
        u32::try_from(env.encoded_len())
            .unwrap_or(u32::MAX)
            .min(self.room_max)
    }

    /// The writer has written `env`: its bytes are free again. Returns its size.
    pub fn written(&self, env: &Envelope) -> usize {
        let size = env.encoded_len();
        let cost = u32::try_from(size).unwrap_or(u32::MAX).min(self.room_max);
        self.room.add_permits(cost as usize);
        size
    }

    pub fn wants(&self, kind: EventKind) -> bool {
        self.events & event_bit(kind) != 0
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Queues a frame for this link's writer; waits while its queue is full, in frames or in
    /// bytes. The frame comes back when the link has gone away.
    pub async fn send(&self, env: Envelope) -> Result<(), Envelope> {
        let cost = self.cost(&env);
        match self.room.acquire_many(cost).await {
            Ok(permit) => permit.forget(),
            // Closed: the link is gone.
            Err(_) => return Err(env),
        }
        match self.tx.send(env).await {
            Ok(()) => Ok(()),
            Err(e) => {
                self.room.add_permits(cost as usize);
                Err(e.0)
            }
        }
    }

    fn weight(&self, conn_id: &str) -> u64 {
        // Fixed keys: the same connection id must weigh the same in every task.
        let mut h = std::collections::hash_map::DefaultHasher::new();
        h.write(conn_id.as_bytes());
        h.write_u64(self.id);
        h.finish()
    }
}

/// A connection's pinned business process.
#[derive(Debug, Default)]
pub struct Pinned {
    link: Option<Arc<Link>>,
}

/// All registered business processes.
#[derive(Debug)]
pub struct Links {
    list: RwLock<Arc<[Arc<Link>]>>,
    next_id: AtomicU64,
    next_authorizer: AtomicU64,
    stats: Arc<Stats>,
    drop_log: Mutex<Throttle>,
    /// How long an event waits for a business process when none is registered.
    wait: Duration,
    /// Notified when a link registers, for the events waiting for one.
    registered: tokio::sync::Notify,
}

/// At most one "no business process" warning per this interval.
const DROP_LOG_EVERY: Duration = Duration::from_secs(10);

impl Links {
    /// The links of a gateway whose events wait up to `wait` for a business process when none
    /// is registered (`--no-business-wait`).
    pub fn new(stats: Arc<Stats>, wait: Duration) -> Self {
        Self {
            list: RwLock::new(Arc::from(Vec::new())),
            next_id: AtomicU64::new(1),
            next_authorizer: AtomicU64::new(0),
            stats,
            drop_log: Mutex::new(Throttle::new(DROP_LOG_EVERY)),
            wait,
            registered: tokio::sync::Notify::new(),
        }
    }

    /// When an event routed now stops waiting for a business process.
    pub fn wait_deadline(&self) -> Instant {
        Instant::now() + self.wait
    }

    /// No business process is registered (peer gateways' links are none).
    fn no_business(&self) -> bool {
        self.snapshot()
            .iter()
            .all(|l| l.name == PEER_LINK_NAME || l.is_closed())
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn snapshot(&self) -> Arc<[Arc<Link>]> {
        self.list.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    pub fn add(&self, link: Arc<Link>) {
        let mut list = self.list.write().unwrap_or_else(|p| p.into_inner());
        Stats::incr(self.counter(&link));
        let mut next: Vec<_> = list.iter().cloned().collect();
        next.push(link);
        *list = next.into();
        drop(list);
        self.registered.notify_waiters();
    }

    /// Takes a link out of routing; events already pinned to it move on their next send, and
    /// senders waiting for room in its queue get their frames back.
    pub fn remove(&self, link: &Link) {
        if link.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        link.room.close();
        let mut list = self.list.write().unwrap_or_else(|p| p.into_inner());
        let next: Vec<_> = list.iter().filter(|l| l.id != link.id).cloned().collect();
        *list = next.into();
        Stats::decr(self.counter(link));
    }

    /// Sends `body` to every registered business process (for example Draining), waiting at
    /// most `limit` for links whose queues are full.
    pub async fn notify_all(&self, body: Body, limit: Duration) {
        let links = self.snapshot();
        let sends = links.iter().map(|l| {
            let env = Envelope {
                request_id: 0,
                body: Some(body.clone()),
                ..Default::default()
            };
            tokio::time::timeout(limit, l.send(env))
        });
        futures_util::future::join_all(sends).await;
    }

    /// The next live link that answers Authorize requests, in turn.
    pub fn next_authorizer(&self) -> Option<Arc<Link>> {
        let able: Vec<_> = self
            .snapshot()
            .iter()
            .filter(|l| l.authorize && !l.is_closed())
            .cloned()
            .collect();
        let turn = self.next_authorizer.fetch_add(1, Ordering::Relaxed) as usize;
        able.get(turn % able.len().max(1)).cloned()
    }

    fn counter(&self, link: &Link) -> &std::sync::atomic::AtomicU64 {
        if link.name == PEER_LINK_NAME {
            &self.stats.peer_links_current
        } else {
            &self.stats.links_current
        }
    }

    /// The live link with the highest weight for this connection among those wanting `kind`.
    fn choose(&self, conn_id: &str, kind: EventKind) -> Option<Arc<Link>> {
        self.snapshot()
            .iter()
            .filter(|l| l.wants(kind) && !l.is_closed())
            .max_by_key(|l| l.weight(conn_id))
            .cloned()
    }

    /// Delivers one event for a connection to its business process. Returns false when no
    /// business process wants it (the event is dropped). The time until the event is in a
    /// link's queue (waiting while it is full) goes to the dispatch latency histogram.
    pub async fn dispatch(&self, pin: &mut Pinned, body: Body) -> bool {
        let env = Envelope {
            body: Some(body),
            ..Default::default()
        };
        self.route(pin, env, self.wait_deadline()).await
    }

    /// Re-routes an event that a link that has gone away held (queued, or written and not
    /// acknowledged: then marked `redelivered`), waiting for a business process until
    /// `deadline` at most (one deadline for all of them: see [`wait_deadline`](Self::wait_deadline)).
    pub async fn redispatch(&self, env: Envelope, deadline: Instant) -> bool {
        self.route(&mut Pinned::default(), env, deadline).await
    }

    async fn route(&self, pin: &mut Pinned, mut env: Envelope, deadline: Instant) -> bool {
        let Some(body) = env.body.as_ref() else {
            return false;
        };
        let (Some(kind), Some(conn_id)) = (event_kind(body), event_conn_id(body)) else {
            return false;
        };
        let started = Instant::now();
        let conn_id = conn_id.to_owned();
        let mut waited = false;
        loop {
            if let Some(gone) = pin.link.as_ref().filter(|l| l.is_closed()) {
                // What it held goes to other links first; this event follows it.
                gone.handed_over.cancelled().await;
            }
            // Listening before looking, so a registration in between is not missed.
            let registered = self.registered.notified();
            tokio::pin!(registered);
            registered.as_mut().enable();
            let pinned = pin
                .link
                .as_ref()
                .filter(|l| !l.is_closed() && l.wants(kind))
                .cloned();
            let Some(link) = pinned.or_else(|| self.choose(&conn_id, kind)) else {
                if self.no_business() && Instant::now() < deadline {
                    if !waited {
                        waited = true;
                        Stats::incr(&self.stats.events_waited_for_business);
                    }
                    let _ = tokio::time::timeout_at(deadline.into(), registered).await;
                    continue;
                }
                self.dropped(kind, &conn_id);
                return false;
            };
            if pin.link.as_ref().is_none_or(|p| p.is_closed()) {
                pin.link = Some(link.clone());
            }
            match link.send(env).await {
                Ok(()) => {
                    self.stats.event_dispatch.observe(started.elapsed());
                    return true;
                }
                // The link died between the choice and the send: choose again.
                Err(back) => {
                    self.remove(&link);
                    env = back;
                }
            }
        }
    }

    fn dropped(&self, kind: EventKind, conn_id: &str) {
        if kind != EventKind::Message {
            tracing::debug!(
                conn_id,
                ?kind,
                "no business process wants this event; dropped"
            );
            return;
        }
        Stats::incr(&self.stats.dropped_no_business);
        let due = {
            let mut log = self.drop_log.lock().unwrap_or_else(|p| p.into_inner());
            log.tick(Instant::now())
        };
        if let Some(dropped) = due {
            tracing::warn!(
                dropped,
                "client messages dropped: no business process is registered for message events; \
                 start one (for example `cargo run -p wsgate-examples --bin echo`)"
            );
        }
    }
}
