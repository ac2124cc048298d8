//! Where the clients count what they receive: deliveries and latencies, sharded so that the
//! clients' worker threads do not fight over one counter or one histogram.
//!
//! Client `i` writes to shard `i % SHARDS`, once per read (not per message); the totals are
//! summed over the shards when someone asks. Latencies are recorded only while
//! [`Recorder::set_recording`] is on, so warm-up traffic is counted but not timed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Shards: many more than threads, so two threads rarely pick the same one at once.
const SHARDS: usize = 64;

/// Highest latency the histograms track exactly: 60 s in microseconds. Larger ones saturate.
const MAX_MICROS: u64 = 60_000_000;

/// A new latency histogram: 1 µs to 60 s, 3 significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // Constant, valid bounds: construction cannot fail.
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("1..60e6 with 3 digits is a valid range")
}

/// Cache-line sized so neighbouring shards do not share a line.
#[repr(align(128))]
struct Shard {
    delivered: AtomicU64,
    latencies: Mutex<Histogram<u64>>,
}

/// The shared sink of one group of clients.
pub struct Recorder {
    shards: Box<[Shard]>,
    /// Messages received per client, for "did every client get something".
    per_client: Box<[AtomicU64]>,
    recording: AtomicBool,
    /// Client tasks still running (connected and not closed).
    alive: AtomicUsize,
    /// Clients whose connection the server closed or dropped.
    closed_by_server: AtomicU64,
    /// The first reason a client stopped, for the report.
    first_end: Mutex<Option<String>>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("delivered", &self.delivered())
            .field("alive", &self.alive())
            .finish()
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub samples: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            samples: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }
}

impl Recorder {
    pub fn new(clients: usize) -> Recorder {
        Recorder {
            shards: (0..SHARDS)
                .map(|_| Shard {
                    delivered: AtomicU64::new(0),
                    latencies: Mutex::new(new_histogram()),
                })
                .collect(),
            per_client: (0..clients).map(|_| AtomicU64::new(0)).collect(),
            recording: AtomicBool::new(false),
            alive: AtomicUsize::new(0),
            closed_by_server: AtomicU64::new(0),
            first_end: Mutex::new(None),
        }
    }

    /// Whether latencies are being recorded; clients check it once per read.
    pub fn recording(&self) -> bool {
        self.recording.load(Ordering::Relaxed)
    }

    pub fn set_recording(&self, on: bool) {
        self.recording.store(on, Ordering::Relaxed);
    }

    /// Client `client` received `messages` messages with these latencies (µs).
    pub fn record(&self, client: usize, messages: u64, latencies: &[u64]) {
        if messages == 0 {
            return;
        }
        let shard = &self.shards[client % SHARDS];
        shard.delivered.fetch_add(messages, Ordering::Relaxed);
        if let Some(c) = self.per_client.get(client) {
            c.fetch_add(messages, Ordering::Relaxed);
        }
        if !latencies.is_empty() {
            let mut h = lock(&shard.latencies);
            for &l in latencies {
                h.saturating_record(l);
            }
        }
    }

    /// Every message received so far, by every client.
    pub fn delivered(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.delivered.load(Ordering::Relaxed))
            .sum()
    }

    /// Empties the latency histograms (between phases).
    pub fn reset_latencies(&self) {
        for s in self.shards.iter() {
            lock(&s.latencies).reset();
        }
    }

    /// The latencies recorded since the last reset, merged.
    pub fn latencies(&self) -> Percentiles {
        let mut all = new_histogram();
        for s in self.shards.iter() {
            // Same bounds everywhere, so adding cannot fail.
            let _ = all.add(&*lock(&s.latencies));
        }
        Percentiles::of(&all)
    }

    /// Clients that have received nothing at all.
    pub fn silent_clients(&self) -> usize {
        self.per_client
            .iter()
            .filter(|c| c.load(Ordering::Relaxed) == 0)
            .count()
    }

    pub fn alive(&self) -> usize {
        self.alive.load(Ordering::Relaxed)
    }

    /// A client task started; the guard marks it gone when dropped (also when aborted).
    pub fn enter(self: &std::sync::Arc<Self>) -> AliveGuard {
        self.alive.fetch_add(1, Ordering::Relaxed);
        AliveGuard(self.clone())
    }

    /// A client stopped because of the server (close frame, EOF, error).
    pub fn server_ended(&self, why: String) {
        self.closed_by_server.fetch_add(1, Ordering::Relaxed);
        let mut first = lock(&self.first_end);
        if first.is_none() {
            *first = Some(why);
        }
    }

    pub fn closed_by_server(&self) -> u64 {
        self.closed_by_server.load(Ordering::Relaxed)
    }

    pub fn first_end(&self) -> Option<String> {
        lock(&self.first_end).clone()
    }
}

/// Counts a client task as alive while it exists.
#[derive(Debug)]
pub struct AliveGuard(std::sync::Arc<Recorder>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.alive.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A poisoned lock only means another client panicked mid-record; the counts are still good.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_shards_and_times_only_while_recording() {
        let r = std::sync::Arc::new(Recorder::new(3));
        r.record(0, 2, &[]);
        r.set_recording(true);
        r.record(1, 1, &[100]);
        r.record(65, 1, &[300]);
        assert_eq!(r.delivered(), 4);
        assert_eq!(r.silent_clients(), 1);
        let p = r.latencies();
        assert_eq!(p.samples, 2);
        assert_eq!(p.p50_us, 100);
        r.reset_latencies();
        assert_eq!(r.latencies().samples, 0);
        let guard = r.enter();
        assert_eq!(r.alive(), 1);
        drop(guard);
        assert_eq!(r.alive(), 0);
    }
}
