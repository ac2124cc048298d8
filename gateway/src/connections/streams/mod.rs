//! Streams (docs/streams.md): the topics and users whose messages get offsets and a bounded
//! history, so a client that reconnects is given what it missed — the in-memory engine.
//!
//! The invariant: **a member of a stream gets each of its publications exactly once, in
//! offset order**, whether it was a member when the publication was made (live) or joined
//! after (replayed). Two things enforce it, both under the stream's own lock (an async mutex,
//! held across the fan-out's yields):
//!
//! - a publication takes the next offset, goes into the history and is queued for the members
//!   found at that moment, all under the lock ([`Stream::publish`], then the caller's fan-out);
//! - a connection becomes a member under the same lock, and what the history holds after its
//!   position is queued for it before the lock is released ([`Streams::joining`]).
//!
//! So a publication is either in what a joiner was replayed or queued to it live, never both
//! and never neither. A task holds one stream lock at a time, except a join of several
//! streams at once, which takes them in name order: no two tasks can wait on each other.
//!
//! A stream is made on first use; one that keeps nothing any more (its last message is older
//! than its age bound) is forgotten at a sweep (every [`SWEEP_EVERY`] streams made) and starts
//! under a new epoch if used again. At most
//! `--max-streams` exist: past that, a topic or user that would be a new stream is treated as
//! no stream (its messages delivered live, without history) and a warning says so.

pub(crate) mod rules;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};
use wsgate_proto::stream::{Gap, History, Position, Recovery};

use self::rules::{Kind, Rule};
use super::message::Message;
use super::registry::{Conn, Registry};
use crate::stats::Stats;
use crate::throttle::Throttle;
use crate::websocket::subprotocol::{self, At, Body, Joined};

/// Streams made between two sweeps of the forgotten ones.
const SWEEP_EVERY: u64 = 1024;

/// The streams of one gateway.
#[derive(Debug)]
pub(crate) struct Streams {
    rules: Vec<Rule>,
    max: usize,
    map: Mutex<HashMap<Arc<str>, Arc<AsyncMutex<Stream>>>>,
    made: AtomicU64,
    refused: Mutex<Throttle>,
    stats: Arc<Stats>,
}

/// One stream: its name, whether it is in cache mode, and its history.
#[derive(Debug)]
pub(crate) struct Stream {
    name: Arc<str>,
    cache: bool,
    history: History<Kept>,
}

/// A publication as kept: both encodings, so a replay encodes nothing.
#[derive(Debug, Clone)]
struct Kept {
    plain: Bytes,
    framed: Bytes,
}

/// A stream, locked: what publishing and joining need.
pub(crate) type Locked = OwnedMutexGuard<Stream>;

impl Streams {
    pub(crate) fn new(rules: Vec<Rule>, max: usize, stats: Arc<Stats>) -> Self {
        Self {
            rules,
            max,
            map: Mutex::default(),
            made: AtomicU64::new(0),
            refused: Mutex::new(Throttle::new(Duration::from_secs(60))),
            stats,
        }
    }

    /// Whether any topic or user can be a stream: without rules nothing here is ever used.
    pub(crate) fn configured(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The stream of topic or user `name`, made on first use; `None` when no rule names it
    /// or the gateway holds `--max-streams` already.
    pub(crate) fn get(&self, kind: Kind, name: &str) -> Option<Arc<AsyncMutex<Stream>>> {
        let rule = rules::find(&self.rules, kind, name)?;
        let key: Arc<str> = format!("{}{name}", kind.prefix()).into();
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(stream) = map.get(&key) {
            return Some(stream.clone());
        }
        if map.len() >= self.max {
            drop(map);
            self.refuse(&key);
            return None;
        }
        let made = self.made.fetch_add(1, Ordering::Relaxed) + 1;
        if made.is_multiple_of(SWEEP_EVERY) {
            sweep(&mut map);
        }
        let stream = Arc::new(AsyncMutex::new(Stream {
            name: key.clone(),
            cache: rule.cache,
            history: History::new(epoch(made), rule.bounds),
        }));
        map.insert(key, stream.clone());
        self.stats
            .streams_current
            .store(map.len() as u64, Ordering::Relaxed);
        Some(stream)
    }

    /// The stream of `name`, locked; `None` as in [`get`](Self::get).
    pub(crate) async fn lock(&self, kind: Kind, name: &str) -> Option<Locked> {
        Some(self.get(kind, name)?.lock_owned().await)
    }

    /// Runs `change` (which may make `conn` a member of any of `candidates`) with the streams
    /// among them locked, then queues for `conn`, in each stream it newly joined, what the
    /// stream gives a joiner ([`Stream::join`]) — before any later publication can reach it.
    pub(crate) async fn joining<T>(
        &self,
        registry: &Registry,
        conn: &Conn,
        candidates: &[(Kind, &str)],
        change: impl FnOnce() -> T,
    ) -> T {
        if !self.configured() {
            return change();
        }
        let mut named: Vec<(Kind, &str)> = candidates
            .iter()
            .copied()
            .filter(|(kind, name)| rules::find(&self.rules, *kind, name).is_some())
            .collect();
        // Name order, so two joins never wait on each other's locks.
        named.sort_by(|a, b| (a.0.prefix(), a.1).cmp(&(b.0.prefix(), b.1)));
        named.dedup();
        let mut locked = Vec::with_capacity(named.len());
        for (kind, name) in named {
            if let Some(stream) = self.lock(kind, name).await {
                let user = kind == Kind::Users;
                let was = conn.state.is_member(user, name);
                locked.push((user, name, stream, was));
            }
        }
        let out = change();
        let now = Instant::now();
        let streams_client = conn.streams();
        for (user, name, mut stream, was) in locked {
            if was || !conn.state.is_member(user, name) {
                continue;
            }
            let since = conn.take_position(&stream.name);
            let (frames, how) = stream.join(since.as_ref(), streams_client, now);
            match how {
                Joined::Fresh => {}
                Joined::Recovered => Stats::incr(&self.stats.stream_recovered),
                Joined::NotRecovered(_) => Stats::incr(&self.stats.stream_not_recovered),
            }
            for frame in frames {
                registry.offer(conn, &frame);
            }
        }
        out
    }

    /// Past `--max-streams`: counted, and a warning at most once a minute.
    fn refuse(&self, name: &str) {
        Stats::incr(&self.stats.stream_history_refused);
        let due = self
            .refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tick(Instant::now());
        if let Some(times) = due {
            tracing::warn!(
                stream = name,
                times,
                max = self.max,
                "this gateway holds --max-streams streams: new ones are delivered live without history (clients get no offsets for them); raise --max-streams or narrow the --stream patterns"
            );
        }
    }
}

/// Forgets the streams that nobody holds (no publish or join under way) and that keep nothing
/// any more (their last message is older than their age bound).
fn sweep(map: &mut HashMap<Arc<str>, Arc<AsyncMutex<Stream>>>) {
    let now = Instant::now();
    map.retain(|_, stream| {
        if Arc::strong_count(stream) > 1 {
            return true;
        }
        match stream.try_lock() {
            Ok(mut s) => s.history.latest(now).is_some(),
            Err(_) => true,
        }
    });
}

/// A new epoch: different from every other this process makes, and from those of an earlier
/// run (the clock has moved on).
fn epoch(made: u64) -> String {
    static SALT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let salt = *SALT.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    format!(
        "{:x}",
        salt.wrapping_add(made.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    )
}

impl Stream {
    /// Appends a message (`plain`, an encoded data frame) to the stream: the message to queue
    /// for every current member, with `ack` for clients asked to acknowledge it. The caller
    /// queues it while still holding the lock.
    pub(crate) fn publish(&mut self, plain: Bytes, ack: Option<u64>, stats: &Stats) -> Message {
        Stats::incr(&stats.stream_publications);
        let now = Instant::now();
        let position = self.history.position();
        let at = At {
            stream: &self.name,
            epoch: &position.epoch,
            offset: position.offset + 1,
        };
        let body = Body::of_frame(&plain);
        let framed = subprotocol::publication(at, body, None);
        let live = match ack {
            None => framed.clone(),
            // Kept without the ack id: a replay is never waited for.
            Some(_) => subprotocol::publication(at, body, ack),
        };
        let bytes = plain.len() + framed.len();
        self.history.publish(
            Kept {
                plain: plain.clone(),
                framed,
            },
            bytes,
            now,
        );
        Message::publication(plain, live, ack)
    }

    /// What a connection joining the stream is sent, in order: for a client of the
    /// subprotocol, what it missed since `since` (or, in cache mode, the latest message) and
    /// then `joined`; for a plain client, the latest message of a cache-mode stream. And how
    /// the join went.
    pub(crate) fn join(
        &mut self,
        since: Option<&Position>,
        streams_client: bool,
        now: Instant,
    ) -> (Vec<Bytes>, Joined) {
        let pick = |k: &Kept| {
            if streams_client {
                k.framed.clone()
            } else {
                k.plain.clone()
            }
        };
        let (mut frames, how) = match since.filter(|_| streams_client) {
            None => {
                let latest = self.history.latest(now).filter(|_| self.cache);
                (latest.iter().map(|(_, k)| pick(k)).collect(), Joined::Fresh)
            }
            Some(since) => match self.history.recover(since, now) {
                Recovery::Recovered(missed) => (
                    missed.iter().map(|(_, k)| pick(k)).collect(),
                    Joined::Recovered,
                ),
                Recovery::NotRecovered { gap, latest } => {
                    let latest = latest.filter(|_| self.cache);
                    let gap = match gap {
                        Gap::Epoch => "epoch",
                        Gap::Trimmed => "trimmed",
                        Gap::Ahead => "ahead",
                    };
                    (
                        latest.iter().map(|(_, k)| pick(k)).collect::<Vec<_>>(),
                        Joined::NotRecovered(gap),
                    )
                }
            },
        };
        if streams_client {
            let position = self.history.position();
            let at = At {
                stream: &self.name,
                epoch: &position.epoch,
                offset: position.offset,
            };
            frames.push(subprotocol::joined(at, how));
        }
        (frames, how)
    }
}
