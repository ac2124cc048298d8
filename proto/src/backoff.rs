//! Retry delays: exponential backoff, with full jitter by default.
//!
//! Anything that retries after a failure (the SDK reconnecting a lost link, the gateway's
//! accept loop and cluster peer dialling) asks one [`Backoff`] for the wait before each new
//! attempt and resets it once things work again. The n-th wait (0-based) has the ceiling
//! `min(max, min * 2^n)`: it grows quickly, so a peer that is down is not hammered. With full
//! jitter ([`Jitter::Full`], the default) the wait is a random duration between zero and that
//! ceiling, which spreads the retries of many processes out, so a restarted gateway is not hit
//! by all of them at the same instant; without it ([`Jitter::None`]) the wait is the ceiling
//! itself (10 ms, 20 ms, 40 ms, ...).
//!
//! It only counts and draws numbers: the caller sleeps, so it works with any runtime and is
//! tested without waiting.
//!
//! ```
//! use std::time::Duration;
//! use wsgate_proto::backoff::{Backoff, Jitter};
//!
//! let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1))
//!     .with_jitter(Jitter::None);
//! assert_eq!(backoff.next_delay(), Duration::from_millis(10));
//! assert_eq!(backoff.next_delay(), Duration::from_millis(20));
//! backoff.reset(); // it worked again
//! assert_eq!(backoff.next_delay(), Duration::from_millis(10));
//! ```

use std::time::Duration;

use rand::Rng;

/// The SDK's default first ceiling.
pub const DEFAULT_MIN: Duration = Duration::from_millis(100);
/// The SDK's default largest ceiling.
pub const DEFAULT_MAX: Duration = Duration::from_secs(5);

/// How a wait is drawn below its ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// A random duration between zero and the ceiling ("full jitter").
    #[default]
    Full,
    /// The ceiling itself: plain doubling.
    None,
}

/// The state of one retry sequence.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    jitter: Jitter,
    attempt: u32,
}

impl Backoff {
    /// A backoff with full jitter whose first ceiling is `min` and whose ceiling never exceeds
    /// `max`. A `min` larger than `max` is lowered to `max`; a zero `min` is raised to 1 ms so
    /// the ceiling can grow.
    pub fn new(min: Duration, max: Duration) -> Self {
        let max = max.max(Duration::from_millis(1));
        let min = min.max(Duration::from_millis(1)).min(max);
        Self {
            min,
            max,
            jitter: Jitter::Full,
            attempt: 0,
        }
    }

    /// The same backoff, drawing its waits as `jitter` says.
    #[must_use]
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The ceiling of the wait before attempt number `attempt` (0-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        // 2^20 * min is far above any sensible max; capping the shift avoids overflow.
        let factor = 1u32 << attempt.min(20);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// The next wait, drawn with `rng` (unused without jitter), and one more attempt counted.
    pub fn next_delay_with<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Duration {
        let ceiling = self.ceiling(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => {
                let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
                Duration::from_nanos(rng.random_range(0..=nanos))
            }
        }
    }

    /// The next wait, drawn from the thread-local generator, and one more attempt counted.
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_with(&mut rand::rng())
    }

    /// Starts over from the smallest ceiling (after an attempt that worked, or a link that
    /// stayed up).
    pub fn reset(&mut self) {
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

    #[test]
    fn without_jitter_the_wait_is_the_ceiling() {
        // The doubling the gateway's accept loop uses: 10 ms up to 1 s.
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_secs(1))
            .with_jitter(Jitter::None);
        let delays: Vec<_> = (0..9).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(10));
    }
}
