//! Reconnect delays: exponential backoff with full jitter.
//!
//! After a lost link the SDK waits before each reconnect attempt. The n-th wait is a random
//! duration between zero and `min(max, min * 2^n)` ("full jitter"): the ceiling grows quickly
//! so a gateway that is down is not hammered, and the randomness spreads the reconnects of many
//! business processes out, so a restarted gateway is not hit by all of them at the same instant.

use std::time::Duration;

use rand::Rng;

/// The default first ceiling.
pub(crate) const DEFAULT_MIN: Duration = Duration::from_millis(100);
/// The default largest ceiling.
pub(crate) const DEFAULT_MAX: Duration = Duration::from_secs(5);

/// The state of one reconnect sequence.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// A backoff whose first ceiling is `min` and whose ceiling never exceeds `max`.
    /// A `min` larger than `max` is lowered to `max`; a zero `min` is raised to 1 ms so the
    /// ceiling can grow.
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(Duration::from_millis(1));
        let min = min.max(Duration::from_millis(1)).min(max);
        Self {
            min,
            max,
            attempt: 0,
        }
    }

    /// The ceiling of the wait before attempt number `attempt` (0-based).
    pub(crate) fn ceiling(&self, attempt: u32) -> Duration {
        // 2^20 * min is far above any sensible max; capping the shift avoids overflow.
        let factor = 1u32 << attempt.min(20);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// The next wait, drawn with `rng`, and one more attempt counted.
    pub(crate) fn next_delay_with(&mut self, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=nanos))
    }

    /// The next wait, drawn from the thread-local generator.
    pub(crate) fn next_delay(&mut self) -> Duration {
        self.next_delay_with(&mut rand::rng())
    }

    /// Starts over from the smallest ceiling (after a link that stayed up).
    pub(crate) fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn ceiling_doubles_up_to_max() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let ceilings: Vec<_> = (0..9).map(|n| b.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(5));
    }

    #[test]
    fn delays_stay_within_bounds() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        for attempt in 0..200 {
            let ceiling = b.ceiling(attempt);
            let delay = b.next_delay_with(&mut rng);
            assert!(
                delay <= ceiling,
                "attempt {attempt}: {delay:?} > {ceiling:?}"
            );
            assert!(delay <= Duration::from_secs(5));
        }
    }

    #[test]
    fn delays_are_jittered() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
        let delays: Vec<_> = (0..20).map(|_| b.next_delay_with(&mut rng)).collect();
        assert!(delays.iter().any(|d| *d != delays[0]), "{delays:?}");
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_secs(60));
        for _ in 0..10 {
            b.next_delay();
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(10));
    }

    #[test]
    fn odd_bounds_are_tamed() {
        let b = Backoff::new(Duration::from_secs(10), Duration::from_secs(1));
        assert_eq!(b.ceiling(0), Duration::from_secs(1));
        let b = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(b.ceiling(5), Duration::from_millis(1));
    }
}
