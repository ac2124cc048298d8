//! Rate limits on what clients start: messages per connection (`--client-message-rate`) and
//! handshakes per address (`--handshake-rate-per-ip`), both token buckets.
//!
//! A bucket holds up to `burst` tokens and gains `rate` per second; each message or handshake
//! takes one, and one that finds the bucket empty is over the limit. Time is passed in, so the
//! arithmetic is tested without clocks. The per-address table is bounded: addresses whose
//! buckets have filled up again are forgotten, and when the table is full of busy addresses a
//! new one goes unlimited rather than costing memory (logged, at most once a minute).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::throttle::Throttle;

/// What a client past its message rate gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RateLimitAction {
    /// Close the connection with 1008 (policy violation).
    Close,
    /// Drop the messages over the limit (counted); the connection stays open.
    Drop,
}

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenBucket {
    tokens: f32,
    last: Instant,
}

/// A bucket's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rate {
    per_second: f32,
    burst: f32,
}

impl Rate {
    /// `None` when `per_second` is 0 (no limit). A burst below 1 is read as 1.
    pub(crate) fn new(per_second: u32, burst: u32) -> Option<Self> {
        (per_second > 0).then(|| Self {
            per_second: per_second as f32,
            burst: burst.max(1) as f32,
        })
    }

    /// How long until an empty bucket has a token again, rounded up to whole seconds (for
    /// `Retry-After`).
    pub(crate) fn retry_after_secs(&self) -> u64 {
        (1.0 / self.per_second).ceil().max(1.0) as u64
    }
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn full(rate: &Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst,
            last: now,
        }
    }

    fn refill(&mut self, rate: &Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f32();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.last = now;
    }

    /// Takes a token; false when there is none (over the limit).
    pub(crate) fn take(&mut self, rate: &Rate, now: Instant) -> bool {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Full again: nothing is remembered that a new bucket would not know.
    fn is_full(&mut self, rate: &Rate, now: Instant) -> bool {
        self.refill(rate, now);
        self.tokens >= rate.burst
    }
}

/// Addresses tracked at most; past it the table is swept of idle ones, and if all are busy a
/// new address is let through untracked.
const MAX_TRACKED: usize = 65_536;
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Handshakes per client address.
#[derive(Debug)]
pub(crate) struct HandshakeRate {
    rate: Rate,
    table: Mutex<Table>,
}

#[derive(Debug)]
struct Table {
    buckets: HashMap<IpAddr, TokenBucket>,
    /// At most one warning per WARN_EVERY that the table is full.
    warned: Throttle,
}

/// The key an address is counted under: an IPv4 address, or an IPv6 address's /64 (one
/// subscriber usually holds a whole /64, so counting single IPv6 addresses limits nothing).
pub(crate) fn rate_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

impl HandshakeRate {
    pub(crate) fn new(rate: Rate) -> Self {
        Self {
            rate,
            table: Mutex::new(Table {
                buckets: HashMap::new(),
                warned: Throttle::new(WARN_EVERY),
            }),
        }
    }

    pub(crate) fn rate(&self) -> &Rate {
        &self.rate
    }

    /// Takes a handshake token for `ip`; false when it is over the limit.
    pub(crate) fn take(&self, ip: IpAddr, now: Instant) -> bool {
        let key = rate_key(ip);
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bucket) = table.buckets.get_mut(&key) {
            return bucket.take(&self.rate, now);
        }
        if table.buckets.len() >= MAX_TRACKED {
            let rate = self.rate;
            table.buckets.retain(|_, b| !b.is_full(&rate, now));
            if table.buckets.len() >= MAX_TRACKED {
                if let Some(passed) = table.warned.tick(now) {
                    tracing::warn!(
                        tracked = MAX_TRACKED,
                        passed,
                        "the per-address handshake limit tracks its maximum of busy addresses; new addresses pass unlimited until some go quiet"
                    );
                }
                return true;
            }
        }
        let mut bucket = TokenBucket::full(&self.rate, now);
        let taken = bucket.take(&self.rate, now);
        table.buckets.insert(key, bucket);
        taken
    }

    /// Addresses currently tracked.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.table.lock().map(|t| t.buckets.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let rate = Rate::new(10, 5).expect("a limit");
        let t0 = Instant::now();
        let mut b = TokenBucket::full(&rate, t0);
        assert!((0..5).all(|_| b.take(&rate, t0)), "the burst");
        assert!(!b.take(&rate, t0), "then empty");
        // 10 a second: one token every 100 ms.
        assert!(!b.take(&rate, t0 + Duration::from_millis(50)));
        assert!(b.take(&rate, t0 + Duration::from_millis(160)));
        assert!(!b.take(&rate, t0 + Duration::from_millis(170)));
        // A long pause refills no more than the burst.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..10).filter(|_| b.take(&rate, later)).count(), 5);
        assert!(Rate::new(0, 10).is_none(), "0 is no limit");
        assert_eq!(Rate::new(10, 0).map(|r| r.burst), Some(1.0));
        assert_eq!(rate.retry_after_secs(), 1);
    }

    #[test]
    fn addresses_are_limited_apart_and_ipv6_by_its_64() {
        let limit = HandshakeRate::new(Rate::new(1, 2).expect("a limit"));
        let now = Instant::now();
        let a: IpAddr = "203.0.113.1".parse().expect("ip");
        let b: IpAddr = "203.0.113.2".parse().expect("ip");
        assert!(limit.take(a, now) && limit.take(a, now));
        assert!(!limit.take(a, now), "a is over its burst");
        assert!(limit.take(b, now), "b has its own bucket");
        let v6a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let v6b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        assert!(limit.take(v6a, now) && limit.take(v6b, now));
        assert!(!limit.take(v6a, now), "one /64 shares a bucket");
        let mapped: IpAddr = "::ffff:203.0.113.1".parse().expect("ip");
        assert!(
            !limit.take(mapped, now),
            "a mapped IPv4 address is that address"
        );
    }

    #[test]
    fn the_table_forgets_quiet_addresses_and_never_grows_past_its_bound() {
        let limit = HandshakeRate::new(Rate::new(1000, 1).expect("a limit"));
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED as u32 {
            assert!(limit.take(IpAddr::from(i.to_be_bytes()), t0));
        }
        assert_eq!(limit.tracked(), MAX_TRACKED);
        // All busy: a new address passes untracked.
        assert!(limit.take("198.51.100.1".parse().expect("ip"), t0));
        assert_eq!(limit.tracked(), MAX_TRACKED);
        // A moment later every bucket is full again: the sweep frees them.
        let t1 = t0 + Duration::from_millis(10);
        assert!(limit.take("198.51.100.2".parse().expect("ip"), t1));
        assert_eq!(limit.tracked(), 1);
    }
}
