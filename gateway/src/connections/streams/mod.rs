//! Streams (docs/streams.md): the topics and users whose messages get offsets and a bounded
//! history, so a client that reconnects is given what it missed. The history lives in an
//! engine: in this process ([`History`], the default) or in Redis ([`redis`], shared by a
//! cluster); the rules below hold for both.
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

pub(crate) mod redis;
pub(crate) mod rules;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};
use wsgate_proto::stream::{self as history, Bounds, Gap, History, Position};
use wsgate_proto::v1::ErrorCode;
use wsgate_proto::validate::Refused;

use self::redis::{Entry, RedisEngine, WhenDown};
use self::rules::{Kind, Rule};
use super::message::Message;
use super::registry::{Conn, Registry};
use crate::stats::Stats;
use crate::throttle::Throttle;
use crate::websocket::frame;
use crate::websocket::subprotocol::{self, At, Body, Joined};

/// Where streams keep their history (`--stream-engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamEngine {
    /// In this gateway.
    Memory,
    /// In Redis, shared by the gateways of a cluster.
    Redis,
}

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
    /// The Redis engine; `None`: in memory.
    redis: Option<Arc<RedisEngine>>,
}

/// One stream: its name, whether it is in cache mode, its bounds and where its history is.
#[derive(Debug)]
pub(crate) struct Stream {
    name: Arc<str>,
    cache: bool,
    bounds: Bounds,
    keeper: Keeper,
}

/// Where a stream's history is.
#[derive(Debug)]
enum Keeper {
    Memory(History<Kept>),
    /// In Redis; here only what this gateway delivered.
    Redis {
        engine: Arc<RedisEngine>,
        /// The epoch this gateway last saw.
        epoch: String,
        /// The last offset delivered to this gateway's members; `None` before the first.
        delivered: Option<u64>,
    },
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
    pub(crate) fn new(
        rules: Vec<Rule>,
        max: usize,
        redis: Option<RedisEngine>,
        stats: Arc<Stats>,
    ) -> Self {
        if redis.is_none() {
            stats.stream_engine_up.store(1, Ordering::Relaxed);
        }
        Self {
            rules,
            max,
            map: Mutex::default(),
            made: AtomicU64::new(0),
            refused: Mutex::new(Throttle::new(Duration::from_secs(60))),
            stats,
            redis: redis.map(Arc::new),
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
        let keeper = match &self.redis {
            None => Keeper::Memory(History::new(epoch(made), rule.bounds)),
            Some(engine) => Keeper::Redis {
                engine: engine.clone(),
                epoch: String::new(),
                delivered: None,
            },
        };
        let stream = Arc::new(AsyncMutex::new(Stream {
            name: key.clone(),
            cache: rule.cache,
            bounds: rule.bounds,
            keeper,
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
            let (frames, how) = stream.join(since.as_ref(), streams_client, now).await;
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
            Ok(mut s) => match &mut s.keeper {
                Keeper::Memory(history) => history.latest(now).is_some(),
                // Only what this gateway delivered: Redis keeps the rest.
                Keeper::Redis { .. } => false,
            },
            Err(_) => true,
        }
    });
}

/// A new epoch, from a counter of its own.
fn fresh_epoch() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    epoch(NEXT.fetch_add(1, Ordering::Relaxed) << 32)
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
    /// Appends a message (`plain`, an encoded data frame) to the stream: what to queue for
    /// every current member, in order — the publication, after any of the stream's earlier
    /// publications this gateway has not delivered yet (Redis: another gateway's order came
    /// first); nothing when it was delivered already. The caller queues them while still
    /// holding the lock. Refused when Redis cannot be reached and `--stream-redis-down fail`.
    pub(crate) async fn publish(
        &mut self,
        plain: Bytes,
        ack: Option<u64>,
        command_id: &str,
        stats: &Stats,
    ) -> Result<Vec<Message>, Refused> {
        Stats::incr(&stats.stream_publications);
        let now = Instant::now();
        let Stream {
            name,
            bounds,
            keeper,
            ..
        } = self;
        match keeper {
            Keeper::Memory(history) => {
                let position = history.position();
                let at = At {
                    stream: name,
                    epoch: &position.epoch,
                    offset: position.offset + 1,
                };
                let (kept, live) = publication(at, &plain, ack);
                history.publish(kept, plain.len() + live.len(), now);
                Ok(vec![Message::publication(plain, live, ack)])
            }
            Keeper::Redis {
                engine,
                epoch,
                delivered,
            } => {
                // The epoch the stream gets should Redis have none (never a former one: Redis
                // may have lost the stream since).
                let candidate = &fresh_epoch();
                let body = Body::of_frame(&plain);
                let (data, text) = match body {
                    Body::Text(t) => (t.as_bytes(), true),
                    Body::Binary(b) => (b, false),
                };
                let stored = engine
                    .publish(name, candidate, command_id, data, text, *bounds)
                    .await;
                let (now_epoch, offset) = match stored {
                    Ok(stored) => stored,
                    Err(why) => {
                        return match engine.when_down {
                            WhenDown::Fail => Err(Refused {
                                code: ErrorCode::Unavailable,
                                message: format!(
                                    "{why}; nothing was delivered to stream {name} — retry, or run the gateways with --stream-redis-down live to deliver without history meanwhile"
                                ),
                            }),
                            WhenDown::Live => Ok(vec![Message::new(plain, ack)]),
                        };
                    }
                };
                if *epoch != now_epoch {
                    // A new epoch (first use here, or Redis lost the stream): what this gateway
                    // delivered before counts no more.
                    *epoch = now_epoch;
                    *delivered = None;
                }
                let from = delivered.map_or(offset, |d| d + 1);
                if offset < from {
                    return Ok(Vec::new());
                }
                let mut out = Vec::new();
                if offset > from {
                    match engine.read(name, candidate, Some(from - 1), *bounds).await {
                        Ok(read) => {
                            for e in read.entries.iter().filter(|e| e.offset < offset) {
                                let kept = kept_of(name, epoch, e);
                                out.push(Message::publication(kept.plain, kept.framed, None));
                            }
                        }
                        Err(why) => tracing::warn!(
                            stream = &**name,
                            "publications {from} to {} could not be read to fill the gap before {offset}: {why}; clients recover them at their next reconnect",
                            offset - 1
                        ),
                    }
                }
                let at = At {
                    stream: name,
                    epoch,
                    offset,
                };
                // Redis keeps the payload: only the frame sent live is made here.
                let live = subprotocol::publication(at, body, ack);
                out.push(Message::publication(plain, live, ack));
                *delivered = Some(offset);
                Ok(out)
            }
        }
    }

    /// What a connection joining the stream is sent, in order: for a client of the
    /// subprotocol, what it missed since `since` (or, in cache mode, the latest message) and
    /// then `joined`; for a plain client, the latest message of a cache-mode stream. And how
    /// the join went.
    pub(crate) async fn join(
        &mut self,
        since: Option<&Position>,
        streams_client: bool,
        now: Instant,
    ) -> (Vec<Bytes>, Joined) {
        let since = since.filter(|_| streams_client);
        let (position, entries) = match self.read(since, now).await {
            Ok(read) => read,
            Err(position) => {
                // The engine cannot be reached: nothing to replay, and the client is told.
                let how = match since {
                    Some(_) => Joined::NotRecovered("unavailable"),
                    None => Joined::Fresh,
                };
                return (self.joined(&position, how, false, streams_client), how);
            }
        };
        let pick = |k: &Kept| {
            if streams_client {
                k.framed.clone()
            } else {
                k.plain.clone()
            }
        };
        let latest = |entries: &[(u64, Kept)]| -> Vec<Bytes> {
            entries
                .last()
                .filter(|_| self.cache)
                .map(|(_, k)| pick(k))
                .into_iter()
                .collect()
        };
        let (frames, how) = match since {
            None => (latest(&entries), Joined::Fresh),
            Some(since) => {
                let first_kept = entries.first().map(|(offset, _)| *offset);
                match history::gap(since, &position, first_kept) {
                    None => (
                        entries
                            .iter()
                            .filter(|(offset, _)| *offset > since.offset)
                            .map(|(_, k)| pick(k))
                            .collect(),
                        Joined::Recovered,
                    ),
                    Some(gap) => (latest(&entries), Joined::NotRecovered(gap_name(gap))),
                }
            }
        };
        // Only the cache's latest message comes before a join that did not recover.
        let latest = !frames.is_empty() && how != Joined::Recovered;
        let mut frames = frames;
        frames.extend(self.joined(&position, how, latest, streams_client));
        (frames, how)
    }

    /// The `joined` frame for a client of the subprotocol.
    fn joined(
        &self,
        position: &Position,
        how: Joined,
        latest: bool,
        streams_client: bool,
    ) -> Vec<Bytes> {
        if !streams_client {
            return Vec::new();
        }
        let at = At {
            stream: &self.name,
            epoch: &position.epoch,
            offset: position.offset,
        };
        vec![subprotocol::joined(at, how, latest)]
    }

    /// The stream's position for a joiner and what it keeps (oldest first; from Redis, only
    /// what comes after `since` and up to what this gateway delivered). `Err`: Redis cannot be
    /// reached, with the position this gateway knows.
    async fn read(
        &mut self,
        since: Option<&Position>,
        now: Instant,
    ) -> Result<(Position, Vec<(u64, Kept)>), Position> {
        let Stream {
            name,
            bounds,
            keeper,
            ..
        } = self;
        match keeper {
            Keeper::Memory(history) => {
                history.trim(now);
                let kept = history.kept().map(|(o, k)| (o, k.clone())).collect();
                Ok((history.position(), kept))
            }
            Keeper::Redis {
                engine,
                epoch,
                delivered,
            } => {
                let candidate = &fresh_epoch();
                let after = since.map(|s| s.offset);
                let Ok(read) = engine.read(name, candidate, after, *bounds).await else {
                    return Err(Position {
                        epoch: epoch.clone(),
                        offset: delivered.unwrap_or(0),
                    });
                };
                if *epoch != read.epoch {
                    *epoch = read.epoch;
                    *delivered = None;
                }
                // What is beyond what this gateway delivered reaches the joiner live, with the
                // other members, when it arrives here.
                let upto = *delivered.get_or_insert(read.last);
                let position = Position {
                    epoch: epoch.clone(),
                    offset: upto,
                };
                let kept = read
                    .entries
                    .iter()
                    .filter(|e| e.offset <= upto)
                    .map(|e| (e.offset, kept_of(name, epoch, e)))
                    .collect();
                Ok((position, kept))
            }
        }
    }
}

/// A publication's two encodings: as kept (no ack id: a replay is never waited for) and as
/// sent live (with `ack` when asked).
fn publication(at: At<'_>, plain: &Bytes, ack: Option<u64>) -> (Kept, Bytes) {
    let body = Body::of_frame(plain);
    let framed = subprotocol::publication(at, body, None);
    let live = match ack {
        None => framed.clone(),
        Some(_) => subprotocol::publication(at, body, ack),
    };
    let kept = Kept {
        plain: plain.clone(),
        framed,
    };
    (kept, live)
}

/// A publication of `stream` read from Redis, encoded.
fn kept_of(stream: &str, epoch: &str, e: &Entry) -> Kept {
    let opcode = if e.text { frame::TEXT } else { frame::BINARY };
    let plain = frame::encode(opcode, &e.data);
    let at = At {
        stream,
        epoch,
        offset: e.offset,
    };
    publication(at, &plain, None).0
}

fn gap_name(gap: Gap) -> &'static str {
    match gap {
        Gap::Epoch => "epoch",
        Gap::Trimmed => "trimmed",
        Gap::Ahead => "ahead",
    }
}
