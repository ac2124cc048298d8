//! The heartbeat of one registered worker link, for either end: when to send the next `Ping`,
//! and when the peer has been silent for so long that the link counts as dead.
//!
//! Both ends ping every interval and drop a link they have heard nothing from (any frame
//! counts) for the heartbeat timeout (`docs/protocol.md` section 8). They differ in when they
//! look: the SDK gives up exactly one timeout after the last frame ([`SilenceCheck::Exact`]);
//! the gateway looks at each of its ping ticks, so its close comes up to one interval later
//! ([`SilenceCheck::AtPing`], as the protocol document says).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use wsgate_proto::link::{Beat, Heartbeat, SilenceCheck};
//!
//! let start = Instant::now();
//! let secs = Duration::from_secs;
//! let mut hb = Heartbeat::new(secs(10), secs(30), SilenceCheck::Exact, start);
//! assert_eq!(hb.poll_timeout(), Some(start + secs(10)));
//! assert_eq!(hb.handle_timeout(start + secs(10)), Some(Beat::Ping));
//! hb.handle_frame(start + secs(15)); // the peer spoke
//! assert_eq!(hb.handle_timeout(start + secs(45)), Some(Beat::Dead { silent_for: secs(30) }));
//! ```

use std::time::{Duration, Instant};

/// The shortest interval and timeout: a zero one would wake its owner without pause.
const MIN: Duration = Duration::from_millis(1);

/// When silence is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SilenceCheck {
    /// The link is dead exactly one timeout after the last frame heard.
    Exact,
    /// Silence is looked at when a ping is due; a ping is not sent on a link found dead.
    AtPing,
}

/// What a [`Heartbeat`] asks for when woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Send a `Ping` ([`frames::ping`](crate::link::frames::ping)).
    Ping,
    /// Nothing was heard for `silent_for` (at least the timeout): close the link. Final.
    Dead {
        /// How long the peer has been silent.
        silent_for: Duration,
    },
}

/// The heartbeat state of one link.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    interval: Duration,
    timeout: Duration,
    check: SilenceCheck,
    next_ping: Instant,
    last_heard: Instant,
    dead: bool,
}

impl Heartbeat {
    /// The heartbeat of a link registered at `now`: the first ping is due one `interval`
    /// later, and registering counts as hearing from the peer. Durations under 1 ms are
    /// raised to 1 ms.
    pub fn new(interval: Duration, timeout: Duration, check: SilenceCheck, now: Instant) -> Self {
        let interval = interval.max(MIN);
        Self {
            interval,
            timeout: timeout.max(MIN),
            check,
            next_ping: now + interval,
            last_heard: now,
            dead: false,
        }
    }

    /// A frame (of any kind) arrived from the peer at `now`.
    pub fn handle_frame(&mut self, now: Instant) {
        self.last_heard = self.last_heard.max(now);
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next; `None` once dead.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.dead {
            return None;
        }
        Some(match self.check {
            SilenceCheck::Exact => self.next_ping.min(self.last_heard + self.timeout),
            SilenceCheck::AtPing => self.next_ping,
        })
    }

    /// Time has passed: whether to ping, or that the link is dead. `None` when nothing is due
    /// yet (a wake-up that came early, or one whose deadline a frame has since moved).
    pub fn handle_timeout(&mut self, now: Instant) -> Option<Beat> {
        if self.dead {
            return None;
        }
        let silent_for = now.saturating_duration_since(self.last_heard);
        let ping_due = now >= self.next_ping;
        let dead = match self.check {
            SilenceCheck::Exact => silent_for >= self.timeout,
            SilenceCheck::AtPing => ping_due && silent_for >= self.timeout,
        };
        if dead {
            self.dead = true;
            return Some(Beat::Dead { silent_for });
        }
        if !ping_due {
            return None;
        }
        // Keep the cadence; a wake-up late by a whole interval or more restarts it from now
        // rather than sending a burst of pings to catch up.
        let next = self.next_ping + self.interval;
        self.next_ping = if next > now {
            next
        } else {
            now + self.interval
        };
        Some(Beat::Ping)
    }

    /// The ping interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The silence after which the link is dead.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn pings_every_interval_while_the_peer_talks() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(ms(100), ms(300), SilenceCheck::Exact, t0);
        for n in 1..=10 {
            let due = t0 + ms(100 * n);
            assert_eq!(hb.poll_timeout(), Some(due));
            assert_eq!(hb.handle_timeout(due - ms(1)), None, "early wake-up");
            assert_eq!(hb.handle_timeout(due), Some(Beat::Ping));
            hb.handle_frame(due + ms(5)); // the Pong
        }
    }

    #[test]
    fn exact_check_ends_the_link_one_timeout_after_the_last_frame() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(ms(100), ms(250), SilenceCheck::Exact, t0);
        hb.handle_frame(t0 + ms(40));
        assert_eq!(hb.handle_timeout(t0 + ms(100)), Some(Beat::Ping));
        assert_eq!(hb.handle_timeout(t0 + ms(200)), Some(Beat::Ping));
        assert_eq!(hb.poll_timeout(), Some(t0 + ms(290)));
        assert_eq!(hb.handle_timeout(t0 + ms(289)), None);
        assert_eq!(
            hb.handle_timeout(t0 + ms(290)),
            Some(Beat::Dead {
                silent_for: ms(250)
            })
        );
        assert_eq!(hb.poll_timeout(), None);
        assert_eq!(hb.handle_timeout(t0 + ms(400)), None, "dead is final");
    }

    #[test]
    fn a_frame_moves_the_deadline() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(ms(1000), ms(300), SilenceCheck::Exact, t0);
        assert_eq!(hb.poll_timeout(), Some(t0 + ms(300)));
        hb.handle_frame(t0 + ms(200));
        // The owner wakes at the old deadline and learns nothing is due.
        assert_eq!(hb.handle_timeout(t0 + ms(300)), None);
        assert_eq!(hb.poll_timeout(), Some(t0 + ms(500)));
    }

    #[test]
    fn at_ping_check_looks_only_when_a_ping_is_due() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(ms(100), ms(250), SilenceCheck::AtPing, t0);
        assert_eq!(hb.handle_timeout(t0 + ms(100)), Some(Beat::Ping));
        assert_eq!(hb.handle_timeout(t0 + ms(200)), Some(Beat::Ping));
        // Past the timeout, but no ping is due: nothing yet.
        assert_eq!(hb.handle_timeout(t0 + ms(260)), None);
        assert_eq!(hb.poll_timeout(), Some(t0 + ms(300)));
        assert_eq!(
            hb.handle_timeout(t0 + ms(300)),
            Some(Beat::Dead {
                silent_for: ms(300)
            })
        );
    }

    #[test]
    fn a_late_wake_up_sends_one_ping_not_a_burst() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(ms(100), ms(10_000), SilenceCheck::Exact, t0);
        assert_eq!(hb.handle_timeout(t0 + ms(550)), Some(Beat::Ping));
        assert_eq!(hb.poll_timeout(), Some(t0 + ms(650)));
        assert_eq!(hb.handle_timeout(t0 + ms(600)), None);
    }

    #[test]
    fn zero_durations_are_raised() {
        let t0 = Instant::now();
        let hb = Heartbeat::new(Duration::ZERO, Duration::ZERO, SilenceCheck::Exact, t0);
        assert_eq!(hb.interval(), ms(1));
        assert_eq!(hb.timeout(), ms(1));
    }
}
