//! A warning that is written at most once per interval however often its cause happens, and
//! says how often it happened since the last one: a full gateway or a flood of dropped
//! messages must not also fill the log. The one helper for every such warning (client
//! messages nobody takes, the connection limit, the handshake-rate table).
//!
//! It only counts and compares instants; the caller passes `now` and holds the lock.

use std::time::{Duration, Instant};

/// Counts occurrences and says when one should be logged.
#[derive(Debug)]
pub(crate) struct Throttle {
    every: Duration,
    last: Option<Instant>,
    since: u64,
}

impl Throttle {
    /// At most one line per `every`; the first occurrence is logged at once.
    pub(crate) const fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            since: 0,
        }
    }

    /// Counts one occurrence at `now`. `Some(n)` when a line is due: `n` occurrences since the
    /// last line, this one included.
    pub(crate) fn tick(&mut self, now: Instant) -> Option<u64> {
        self.since += 1;
        if self
            .last
            .is_some_and(|at| now.saturating_duration_since(at) < self.every)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_counting_the_rest() {
        let t0 = Instant::now();
        let every = Duration::from_secs(10);
        let mut throttle = Throttle::new(every);
        assert_eq!(throttle.tick(t0), Some(1), "the first is logged at once");
        for i in 1..=5 {
            assert_eq!(throttle.tick(t0 + Duration::from_secs(i)), None);
        }
        // Five silent ones and this one.
        assert_eq!(throttle.tick(t0 + every), Some(6));
        assert_eq!(throttle.tick(t0 + every), None);
        // A long quiet time: the next is logged at once, counting only itself and the one
        // before it.
        assert_eq!(throttle.tick(t0 + every * 5), Some(2));
    }

    #[test]
    fn an_earlier_instant_does_not_log_again() {
        // Instants from different threads may arrive out of order under the caller's lock.
        let t0 = Instant::now() + Duration::from_secs(60);
        let mut throttle = Throttle::new(Duration::from_secs(10));
        assert_eq!(throttle.tick(t0), Some(1));
        assert_eq!(throttle.tick(t0 - Duration::from_secs(30)), None);
    }
}
