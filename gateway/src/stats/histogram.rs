//! A latency histogram with fixed buckets, kept in atomics so recording on the hot path is a
//! bucket search over a dozen constants and three relaxed increments, with no lock.
//!
//! Buckets are stored per bucket (not cumulative); the Prometheus exporter adds them up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets in seconds, as Prometheus shows them (`le`).
pub const BOUNDS_SECONDS: [&str; 14] = [
    "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
    "0.1", "0.25", "0.5", "1",
];

/// The same bounds in nanoseconds, for recording.
const BOUNDS_NANOS: [u64; 14] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];

/// Observations of durations: a count per bucket (the last one is +Inf), their sum and count.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS_NANOS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

/// A consistent-enough copy of a histogram for export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Cumulative counts, one per bound in [`BOUNDS_SECONDS`], then +Inf.
    pub cumulative: Vec<u64>,
    pub sum_nanos: u64,
    pub count: u64,
}

impl Histogram {
    /// Records one duration.
    pub fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_NANOS
            .iter()
            .position(|b| nanos <= *b)
            .unwrap_or(BOUNDS_NANOS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The cumulative view Prometheus wants. Read without a lock, so a recording in flight may
    /// show in a bucket and not yet in the count; `count` is taken as the +Inf bucket so the
    /// exposition stays monotonic within itself.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let mut cumulative: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| {
                total += b.load(Ordering::Relaxed);
                total
            })
            .collect();
        if let Some(inf) = cumulative.last_mut() {
            *inf = total;
        }
        HistogramSnapshot {
            cumulative,
            sum_nanos: self.sum_nanos.load(Ordering::Relaxed),
            count: total,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(10));
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(7));
        let s = h.snapshot();
        assert_eq!(s.cumulative.len(), BOUNDS_SECONDS.len() + 1);
        assert_eq!(s.cumulative[0], 2, "50µs falls in the 0.00005 bucket");
        assert_eq!(s.cumulative[5], 2, "le=0.0025");
        assert_eq!(s.cumulative[6], 3, "le=0.005");
        assert_eq!(s.cumulative[13], 3, "le=1");
        assert_eq!(s.cumulative[14], 4, "+Inf");
        assert_eq!(s.count, 4);
        assert_eq!(s.sum_nanos, 10_000 + 50_000 + 3_000_000 + 7_000_000_000);
    }

    #[test]
    fn bounds_agree() {
        for (text, nanos) in BOUNDS_SECONDS.iter().zip(BOUNDS_NANOS) {
            let secs: f64 = text.parse().expect("a number");
            assert_eq!((secs * 1e9).round() as u64, nanos, "{text}");
        }
    }
}
