//! What each consumer (docs/consumers.md) has done and whether it reaches its broker: read by
//! `/metrics`, `/readyz` and the console, written by the consumer's task.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Why a consumer refused a message (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BadReason {
    /// Longer than `max_bytes`.
    TooLarge,
    /// Not JSON (a JSON-command consumer).
    NotJson,
    /// JSON, but not `{"method": …, "params": …}`.
    NotCommand,
    /// A method the API does not have.
    UnknownMethod,
    /// The params do not fit the method, or a gateway refused the command.
    Invalid,
    /// The channel, subject or routing key does not match `from`.
    NoRoute,
    /// The message id cannot be a command id.
    BadId,
}

impl BadReason {
    /// Every reason, in label order.
    pub const ALL: [BadReason; 7] = [
        BadReason::TooLarge,
        BadReason::NotJson,
        BadReason::NotCommand,
        BadReason::UnknownMethod,
        BadReason::Invalid,
        BadReason::NoRoute,
        BadReason::BadId,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            BadReason::TooLarge => "too_large",
            BadReason::NotJson => "not_json",
            BadReason::NotCommand => "not_command",
            BadReason::UnknownMethod => "unknown_method",
            BadReason::Invalid => "invalid",
            BadReason::NoRoute => "no_route",
            BadReason::BadId => "bad_id",
        }
    }
}

/// One consumer's counters and state.
#[derive(Debug)]
pub struct ConsumerStats {
    pub name: String,
    /// Its kind as the config writes it (`rabbitmq`, `redis-list`, …).
    pub kind: &'static str,
    /// Messages carried out (and acknowledged to the broker).
    pub messages: AtomicU64,
    /// Redeliveries recognised by their message id: not carried out again.
    pub duplicates: AtomicU64,
    /// Tries that found the gateway unable to take a command (retried, not acknowledged).
    pub retries: AtomicU64,
    /// Messages refused, by [`BadReason`].
    bad: [AtomicU64; BadReason::ALL.len()],
    /// Broker connections lost.
    pub disconnects: AtomicU64,
    /// Redis Pub/Sub and NATS core messages dropped because too many were waiting to be
    /// carried out.
    pub dropped: AtomicU64,
    /// Whether it is connected and reading.
    up: AtomicBool,
    /// Messages waiting at the broker, where the broker says (-1: unknown).
    lag: AtomicI64,
    /// Why it is not connected, while it is not.
    error: Mutex<Option<String>>,
}

impl ConsumerStats {
    fn new(name: String, kind: &'static str) -> Self {
        Self {
            name,
            kind,
            messages: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            bad: Default::default(),
            disconnects: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            up: AtomicBool::new(false),
            lag: AtomicI64::new(-1),
            error: Mutex::new(Some("connecting".into())),
        }
    }

    /// Counts a refused message.
    pub(crate) fn bad(&self, reason: BadReason) {
        self.bad[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Messages refused for `reason`.
    pub fn bad_count(&self, reason: BadReason) -> u64 {
        self.bad[reason as usize].load(Ordering::Relaxed)
    }

    /// Marks it connected.
    pub(crate) fn connected(&self) {
        self.up.store(true, Ordering::Relaxed);
        *self.error.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Marks it disconnected, with why.
    pub(crate) fn disconnected(&self, why: String) {
        if self.up.swap(false, Ordering::Relaxed) {
            self.disconnects.fetch_add(1, Ordering::Relaxed);
        }
        *self.error.lock().unwrap_or_else(PoisonError::into_inner) = Some(why);
    }

    /// True while it is connected.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Why it is not connected (None while it is).
    pub fn error(&self) -> Option<String> {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Records the broker's count of messages waiting.
    pub(crate) fn set_lag(&self, lag: u64) {
        self.lag
            .store(i64::try_from(lag).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// Messages waiting at the broker, if it says.
    pub fn lag(&self) -> Option<u64> {
        u64::try_from(self.lag.load(Ordering::Relaxed)).ok()
    }
}

/// Every consumer of the gateway, in the config's order.
#[derive(Debug, Default)]
pub struct Consumers(Mutex<Vec<Arc<ConsumerStats>>>);

impl Consumers {
    /// Adds a consumer's counters.
    pub(crate) fn add(&self, name: String, kind: &'static str) -> Arc<ConsumerStats> {
        let stats = Arc::new(ConsumerStats::new(name, kind));
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(stats.clone());
        stats
    }

    /// Every consumer's counters.
    pub fn all(&self) -> Vec<Arc<ConsumerStats>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// One consumer's counters, by name.
    pub fn get(&self, name: &str) -> Option<Arc<ConsumerStats>> {
        self.all().into_iter().find(|c| c.name == name)
    }
}
