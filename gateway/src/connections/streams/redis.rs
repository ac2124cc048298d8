//! The Redis stream engine (`--stream-engine redis`): the offsets, epoch and history of every
//! stream live in one Redis shared by the gateways of a cluster, so a client whose reconnect
//! lands on another gateway recovers there.
//!
//! Per stream, three kinds of keys under `--stream-redis-prefix`:
//!
//! - `<prefix><stream>:m`, a hash: `epoch` and `last` (the last offset given);
//! - `<prefix><stream>:h`, a Redis Stream of the history, entry id `<offset>-0`, fields `d` (the
//!   payload), `k` (`t` text, `b` binary), `t` (publication time, ms). Chosen over a sorted set
//!   because entries are ordered and read by id range (`XRANGE`), trimmed by count at each
//!   append (`XADD MAXLEN`), and a payload needs no uniqueness trick to be stored twice;
//! - `<prefix><stream>:c:<command id>`: the offset a command id was given, for 2 minutes.
//!
//! Every gateway of a cluster receives each cast (the cluster client sends it to all of them)
//! and publishes it here; the command id makes that one publication with one offset, whichever
//! gateway comes first (a script, so atomic). A publication without a command id is appended
//! once per gateway that receives it: publish through the SDK's `Cluster`, HTTP or gRPC (they
//! give every command an id) or give one yourself.
//!
//! Each gateway delivers a stream's publications to its own members in offset order: it
//! remembers the last offset it delivered, skips a publication it already delivered, and
//! fills a gap (an offset another gateway's order put first) from the history before
//! delivering what comes after. A Redis that lost its data (a restart without persistence, a
//! failover) has no epoch for the stream: the next use starts a new one, and clients are told
//! `recovered: false` (gap `epoch`).
//!
//! Redis unreachable: a call fails after a short timeout, the engine is marked down (one
//! warning, `wsgate_stream_engine_up` 0, `/readyz` says `degraded`) and up again on the next
//! success (one line); meanwhile one call every 500 ms tries Redis and the others fail at once. What publishing does meanwhile is `--stream-redis-down`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::stats::Stats;

/// How long one Redis call may take before the engine counts as down.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// While Redis is down, how often a call tries it again; the others fail at once, so a
/// publisher's link (which carries its commands one at a time) is not held 2 s per command.
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// How long a command id's offset is kept: the copies of one cast reach the gateways within
/// the cluster client's request timeout, retries included; keeping it for the stream's whole age
/// would keep a key per publication.
const COMMAND_ID_TTL: Duration = Duration::from_secs(120);

/// How much longer than its history a stream's epoch and last offset are kept: a quiet stream
/// keeps its epoch, so a client that comes back after a pause recovers.
const META_EXTRA: Duration = Duration::from_secs(3600);

const PUBLISH: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'last', 0)
end
if ARGV[2] == '1' then
  local known = redis.call('GET', KEYS[3])
  if known then return {epoch, tonumber(known)} end
end
local offset = redis.call('HINCRBY', KEYS[1], 'last', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[5], offset .. '-0', 'd', ARGV[3], 'k', ARGV[4], 't', ARGV[7])
if ARGV[2] == '1' then redis.call('SET', KEYS[3], offset, 'PX', ARGV[9]) end
redis.call('PEXPIRE', KEYS[2], ARGV[6])
redis.call('PEXPIRE', KEYS[1], ARGV[8])
return {epoch, offset}
";

const READ: &str = r"
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'epoch', epoch, 'last', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local last = redis.call('HGET', KEYS[1], 'last')
if ARGV[3] == 'latest' then
  return {epoch, tonumber(last), redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)}
end
return {epoch, tonumber(last), redis.call('XRANGE', KEYS[2], ARGV[3], '+')}
";

/// What publishing does while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WhenDown {
    /// Refuse the publication (`ERROR_CODE_UNAVAILABLE`, HTTP 503): nothing is delivered, the
    /// publisher retries.
    Fail,
    /// Deliver it live without an offset (a `message` frame), not kept: clients that were
    /// away miss it, and learn so at their next recovery only if the epoch changed.
    Live,
}

/// One stored publication.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub offset: u64,
    pub data: Bytes,
    pub text: bool,
    /// When it was published, ms since the Unix epoch.
    pub at_ms: u64,
}

/// A stream as read: its epoch, its last offset and its history (oldest first).
#[derive(Debug)]
pub(crate) struct Read {
    pub epoch: String,
    pub last: u64,
    pub entries: Vec<Entry>,
}

/// The connection to Redis, shared by every stream of the gateway.
#[derive(Debug)]
pub(crate) struct RedisEngine {
    conn: ConnectionManager,
    prefix: String,
    pub when_down: WhenDown,
    up: AtomicBool,
    /// When a call last tried Redis while it was down.
    probed: std::sync::Mutex<Option<std::time::Instant>>,
    stats: Arc<Stats>,
    publish: redis::Script,
    read: redis::Script,
}

/// Why a call failed, for the log line and the refusal.
pub(crate) type Failure = String;

impl RedisEngine {
    /// An engine for `url` (`redis://host:port/db`); connects on first use, so a gateway starts
    /// while Redis is down.
    pub(crate) fn new(
        url: &str,
        prefix: String,
        when_down: WhenDown,
        stats: Arc<Stats>,
    ) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| {
            format!("--stream-redis-url {url:?} is not a Redis URL (redis://host:port/db): {e}")
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CALL_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = client
            .get_connection_manager_lazy(config)
            .map_err(|e| format!("cannot set up the Redis connection to {url}: {e}"))?;
        stats.stream_engine_up.store(1, Ordering::Relaxed);
        Ok(Self {
            conn,
            prefix,
            when_down,
            up: AtomicBool::new(true),
            probed: std::sync::Mutex::new(None),
            stats,
            publish: redis::Script::new(PUBLISH),
            read: redis::Script::new(READ),
        })
    }

    fn key(&self, stream: &str, part: &str) -> String {
        format!("{}{stream}:{part}", self.prefix)
    }

    /// Appends a publication (once per `command_id`, when given): the stream's epoch and the
    /// publication's offset.
    pub(crate) async fn publish(
        &self,
        stream: &str,
        new_epoch: &str,
        command_id: &str,
        data: &[u8],
        text: bool,
        bounds: wsgate_proto::stream::Bounds,
    ) -> Result<(String, u64), Failure> {
        let ttl = ms(bounds.age);
        let mut call = self.publish.key(self.key(stream, "m"));
        call.key(self.key(stream, "h"))
            .key(self.key(stream, &format!("c:{command_id}")))
            .arg(new_epoch)
            .arg(if command_id.is_empty() { "0" } else { "1" })
            .arg(data)
            .arg(if text { "t" } else { "b" })
            .arg(bounds.messages)
            .arg(ttl)
            .arg(now_ms())
            .arg(ttl + ms(META_EXTRA))
            .arg(ttl.min(ms(COMMAND_ID_TTL)));
        self.probe()?;
        let mut conn = self.conn.clone();
        let answer = call.invoke_async::<(String, u64)>(&mut conn).await;
        self.settle(answer)
    }

    /// The stream's epoch, last offset and the history after `after` — or, for `None`, its
    /// latest entry only (what a fresh join can use: a cache-mode stream's value).
    pub(crate) async fn read(
        &self,
        stream: &str,
        new_epoch: &str,
        after: Option<u64>,
        bounds: wsgate_proto::stream::Bounds,
    ) -> Result<Read, Failure> {
        let mut call = self.read.key(self.key(stream, "m"));
        call.key(self.key(stream, "h"))
            .arg(new_epoch)
            .arg(ms(bounds.age) + ms(META_EXTRA))
            .arg(after.map_or("latest".to_owned(), |a| format!("{}-0", a + 1)));
        self.probe()?;
        let mut conn = self.conn.clone();
        type Raw = (String, u64, Vec<(String, Vec<(String, Vec<u8>)>)>);
        let answer = call.invoke_async::<Raw>(&mut conn).await;
        let (epoch, last, raw) = self.settle(answer)?;
        let oldest = now_ms().saturating_sub(ms(bounds.age));
        let entries = raw
            .into_iter()
            .filter_map(|(id, fields)| entry(&id, fields))
            // Older than the age bound: as forgotten as if Redis had trimmed it.
            .filter(|e| e.at_ms > oldest)
            .collect();
        Ok(Read {
            epoch,
            last,
            entries,
        })
    }

    /// While Redis is down, lets one call through every [`PROBE_EVERY`]; the others fail now.
    fn probe(&self) -> Result<(), Failure> {
        if self.up.load(Ordering::Relaxed) {
            return Ok(());
        }
        let now = std::time::Instant::now();
        let mut probed = self
            .probed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *probed {
            Some(at) if now.duration_since(at) < PROBE_EVERY => Err(
                "the stream engine (Redis) cannot be reached (it was tried less than 500 ms ago)"
                    .into(),
            ),
            _ => {
                *probed = Some(now);
                Ok(())
            }
        }
    }

    /// Records whether Redis answered, with one line when that changes.
    fn settle<T>(&self, answer: redis::RedisResult<T>) -> Result<T, Failure> {
        match answer {
            Ok(value) => {
                if !self.up.swap(true, Ordering::Relaxed) {
                    self.stats.stream_engine_up.store(1, Ordering::Relaxed);
                    tracing::info!("the Redis stream engine answers again; streams keep history");
                }
                Ok(value)
            }
            Err(e) => {
                if self.up.swap(false, Ordering::Relaxed) {
                    self.stats.stream_engine_up.store(0, Ordering::Relaxed);
                    tracing::warn!(
                        error = %e,
                        when_down = ?self.when_down,
                        "the Redis stream engine cannot be reached: stream publications are {} until it answers (--stream-redis-down); clients that join get recovered: false",
                        match self.when_down {
                            WhenDown::Fail => "refused",
                            WhenDown::Live => "delivered live without history",
                        }
                    );
                }
                Err(format!("the stream engine (Redis) cannot be reached: {e}"))
            }
        }
    }
}

/// One history entry from its id (`<offset>-0`) and fields; `None` for anything else.
fn entry(id: &str, fields: Vec<(String, Vec<u8>)>) -> Option<Entry> {
    let offset = id.split_once('-')?.0.parse().ok()?;
    let mut e = Entry {
        offset,
        data: Bytes::new(),
        text: true,
        at_ms: 0,
    };
    for (name, value) in fields {
        match name.as_str() {
            "d" => e.data = value.into(),
            "k" => e.text = value == b"t",
            "t" => e.at_ms = std::str::from_utf8(&value).ok()?.parse().ok()?,
            _ => {}
        }
    }
    Some(e)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, ms)
}
