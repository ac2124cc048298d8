//! Acknowledged events, for both ends: the gateway's window of events written to a link and
//! not yet acknowledged ([`Unacked`]), and the business side's batching of acknowledgements
//! ([`Acker`]).
//!
//! Events on a link that acknowledges are numbered 1, 2, 3, … in the order the gateway writes
//! them; the business process answers with the highest number up to which it has taken every
//! event (a cumulative acknowledgement). The gateway keeps each event until it is covered, so
//! that when the link dies, or stops acknowledging for the ack timeout (a process stopped,
//! paused or deadlocked), it can hand the events, in order, to another process.
//!
//! Bounded: the window holds at most a number of events, and is open while it holds fewer bytes
//! than its bound (the event that crosses the bound still goes, so one larger than the bound
//! goes alone and nothing waits forever); while it is full the gateway writes no more events to
//! that link, its queue fills, and the clients whose events go there are read more slowly (the
//! back-pressure every link already has).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use wsgate_proto::link::acks::{Acker, Unacked, Window};
//!
//! let start = Instant::now();
//! let window = Window { events: 2, bytes: 1 << 20, timeout: Duration::from_secs(10) };
//! let mut unacked = Unacked::new(window);
//! assert_eq!(unacked.sent("open", 40, start), 1);
//! assert_eq!(unacked.sent("hello", 60, start), 2);
//! assert!(!unacked.has_room()); // two events is the whole window
//!
//! // The business side takes both and acknowledges them in one frame.
//! let mut acker = Acker::new(2, Duration::from_millis(20));
//! assert_eq!(acker.taken(1, start), None);
//! assert_eq!(acker.taken(2, start), Some(2));
//! assert_eq!(unacked.ack(2, start), Ok(2));
//! assert!(unacked.has_room());
//! ```

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// How much a link may have written and not had acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Events at most (at least 1).
    pub events: usize,
    /// Bytes at most; one larger event still goes alone.
    pub bytes: usize,
    /// How long a link may go without acknowledging anything while an event waits before it
    /// counts as stalled.
    pub timeout: Duration,
}

/// An acknowledgement the gateway cannot take: the link is closed with `BAD_REQUEST`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    /// It covers events never written (`up_to` beyond the last number given).
    Ahead {
        /// What the business process acknowledged.
        up_to: u64,
        /// The highest number written so far.
        last: u64,
    },
}

impl std::fmt::Display for AckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AckError::Ahead { up_to, last } => write!(
                f,
                "Ack.up_to {up_to} acknowledges events never sent: the last event sent on this link is number {last}; acknowledge only numbers you received"
            ),
        }
    }
}

impl std::error::Error for AckError {}

/// The link has acknowledged nothing for the timeout while its oldest event waited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stalled {
    /// Events written and not acknowledged.
    pub unacked: usize,
    /// How long the oldest has waited.
    pub waited: Duration,
}

/// One event written and not yet acknowledged.
#[derive(Debug)]
struct Entry<T> {
    seq: u64,
    item: T,
    bytes: usize,
    sent_at: Instant,
}

/// The gateway's side: the events written to one link and not yet acknowledged, in order.
#[derive(Debug)]
pub struct Unacked<T> {
    window: Window,
    entries: VecDeque<Entry<T>>,
    bytes: usize,
    /// The number the next event gets.
    next_seq: u64,
    /// When an acknowledgement last released something: a process working through a deep
    /// backlog keeps acknowledging and is not stalled, however old its oldest event.
    progress: Option<Instant>,
}

impl<T> Unacked<T> {
    /// An empty window; the first event is number 1. A window of 0 events is taken as 1.
    pub fn new(window: Window) -> Self {
        Self {
            window: Window {
                events: window.events.max(1),
                ..window
            },
            entries: VecDeque::new(),
            bytes: 0,
            next_seq: 1,
            progress: None,
        }
    }

    /// Whether another event may be written now: fewer than the window's events, and fewer
    /// bytes than its bound (so the event that crosses the byte bound still goes, and one
    /// larger than the whole bound goes alone).
    pub fn has_room(&self) -> bool {
        self.entries.len() < self.window.events && self.bytes < self.window.bytes
    }

    /// `item` (of `bytes`) was written at `now`: kept until acknowledged. Its number.
    ///
    /// The caller checks [`has_room`](Self::has_room) first; an event written without room is
    /// still kept (the window holds whatever was written).
    pub fn sent(&mut self, item: T, bytes: usize, now: Instant) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes = self.bytes.saturating_add(bytes);
        self.entries.push_back(Entry {
            seq,
            item,
            bytes,
            sent_at: now,
        });
        seq
    }

    /// The business process has taken every event up to `up_to`: those are released. How
    /// many were. An acknowledgement at or below one already taken releases nothing (acks may
    /// cross the wire in any order after a resend); one beyond the last event sent is an
    /// error. `now` is when it arrived.
    pub fn ack(&mut self, up_to: u64, now: Instant) -> Result<usize, AckError> {
        let last = self.next_seq - 1;
        if up_to > last {
            return Err(AckError::Ahead { up_to, last });
        }
        let mut released = 0;
        while self.entries.front().is_some_and(|e| e.seq <= up_to) {
            if let Some(e) = self.entries.pop_front() {
                self.bytes -= e.bytes;
                released += 1;
            }
        }
        if released > 0 {
            self.progress = Some(now);
        }
        Ok(released)
    }

    /// Events written and not yet acknowledged.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether everything written has been acknowledged.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes written and not yet acknowledged.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// When the link counts as stalled if nothing is acknowledged until then: the timeout
    /// after the oldest event was written or after the last acknowledgement that released
    /// something, whichever is later; `None` with nothing outstanding.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.since().map(|since| since + self.window.timeout)
    }

    /// Time passed: `Some` when nothing has been acknowledged for the timeout while the oldest
    /// event waited (see [`poll_timeout`](Self::poll_timeout)). The caller closes the link and
    /// hands the events on ([`into_items`](Self::into_items)).
    pub fn handle_timeout(&self, now: Instant) -> Option<Stalled> {
        let since = self.since()?;
        (now.saturating_duration_since(since) >= self.window.timeout).then(|| Stalled {
            unacked: self.entries.len(),
            waited: self
                .entries
                .front()
                .map_or(Duration::ZERO, |e| now.saturating_duration_since(e.sent_at)),
        })
    }

    /// Since when the link has owed progress: its oldest event's writing, or the last
    /// acknowledgement that released something, whichever is later.
    fn since(&self) -> Option<Instant> {
        let oldest = self.entries.front()?.sent_at;
        Some(self.progress.map_or(oldest, |p| p.max(oldest)))
    }

    /// What was never acknowledged, oldest first with its number: to redeliver elsewhere,
    /// marked as possibly seen.
    pub fn into_items(self) -> impl Iterator<Item = (u64, T)> {
        self.entries.into_iter().map(|e| (e.seq, e.item))
    }
}

/// The business side: which events have been taken, and when to say so.
///
/// Events are taken in any order ([`taken`](Self::taken)); the acknowledgement covers the
/// longest run from the first event with none missing. It is sent once `every` events are
/// covered and not yet acknowledged, or `delay` after the first of them was taken, whichever
/// comes first: one `Ack` frame for many events, and none for a link without events.
#[derive(Debug)]
pub struct Acker {
    every: u64,
    delay: Duration,
    /// Every event up to this one has been taken.
    floor: u64,
    /// Taken, above `floor + 1`: waiting for the gap to fill.
    above: BTreeSet<u64>,
    /// The highest number acknowledged so far.
    acked: u64,
    /// When the first event covered and not yet acknowledged was taken.
    since: Option<Instant>,
}

impl Acker {
    /// Acknowledge after `every` events (at least 1) or `delay`, whichever comes first.
    pub fn new(every: u64, delay: Duration) -> Self {
        Self {
            every: every.max(1),
            delay,
            floor: 0,
            above: BTreeSet::new(),
            acked: 0,
            since: None,
        }
    }

    /// The application has taken event `seq` at `now`. `Some(up_to)`: send `Ack { up_to }`
    /// now. A number taken twice, or 0, changes nothing.
    pub fn taken(&mut self, seq: u64, now: Instant) -> Option<u64> {
        if seq <= self.floor {
            return None;
        }
        self.above.insert(seq);
        while self.above.remove(&(self.floor + 1)) {
            self.floor += 1;
        }
        if self.floor > self.acked && self.since.is_none() {
            self.since = Some(now);
        }
        (self.floor - self.acked >= self.every).then(|| self.flush())
    }

    /// When the covered events must be acknowledged at the latest; `None` when all are.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.since.map(|t| t + self.delay)
    }

    /// Time passed: `Some(up_to)` when an `Ack` is due.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<u64> {
        let due = self.poll_timeout()?;
        (now >= due).then(|| self.flush())
    }

    /// The acknowledgement to send now, whatever the batching: what is covered and not yet
    /// acknowledged (before the link closes in an orderly way, for example).
    pub fn pending(&mut self) -> Option<u64> {
        (self.floor > self.acked).then(|| self.flush())
    }

    fn flush(&mut self) -> u64 {
        self.acked = self.floor;
        self.since = None;
        self.floor
    }
}

#[cfg(test)]
mod tests {
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn window(events: usize, bytes: usize) -> Window {
        Window {
            events,
            bytes,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn the_window_is_bounded_in_events_and_bytes_but_one_event_always_goes() {
        let now = Instant::now();
        let mut w = Unacked::new(window(3, 100));
        assert!(w.has_room(), "an empty window takes an event of any size");
        w.sent('a', 1_000, now);
        assert!(!w.has_room(), "past the byte bound nothing more goes");
        assert_eq!(w.ack(1, now), Ok(1));
        w.sent('b', 90, now);
        assert!(w.has_room(), "under the byte bound");
        w.sent('c', 30, now);
        assert!(
            !w.has_room(),
            "the event that crossed the bound went; now it is closed"
        );
        assert_eq!(w.ack(3, now), Ok(2));
        for _ in 0..3 {
            assert!(w.has_room());
            w.sent('d', 10, now);
        }
        assert!(!w.has_room(), "three events is the whole window");
        assert_eq!((w.len(), w.bytes()), (3, 30));
    }

    #[test]
    fn acks_release_a_prefix_old_ones_change_nothing_and_one_ahead_is_refused() {
        let now = Instant::now();
        let mut w = Unacked::new(window(10, 1_000));
        for c in ['a', 'b', 'c', 'd'] {
            w.sent(c, 5, now);
        }
        assert_eq!(w.ack(2, now), Ok(2));
        assert_eq!(w.ack(1, now), Ok(0), "an older ack after a newer one");
        assert_eq!(w.ack(2, now), Ok(0), "the same ack twice");
        assert_eq!(w.ack(9, now), Err(AckError::Ahead { up_to: 9, last: 4 }));
        assert!(w.ack(9, now).unwrap_err().to_string().contains("number 4"));
        let left: Vec<_> = w.into_items().collect();
        assert_eq!(left, [(3, 'c'), (4, 'd')]);
    }

    #[test]
    fn a_link_that_stops_acknowledging_is_stalled_one_timeout_after_its_last_progress() {
        let start = Instant::now();
        let secs = Duration::from_secs;
        let mut w = Unacked::new(window(10, 1_000));
        assert_eq!(
            w.poll_timeout(),
            None,
            "nothing outstanding, nothing to wait for"
        );
        w.sent(1, 1, start);
        w.sent(2, 1, start + secs(3));
        assert_eq!(w.poll_timeout(), Some(start + secs(5)));
        assert_eq!(w.handle_timeout(start + secs(4)), None);
        // The first is acknowledged at 4 s: the link has until 4 + 5 s for the next.
        assert_eq!(w.ack(1, start + secs(4)), Ok(1));
        assert_eq!(w.poll_timeout(), Some(start + secs(9)));
        assert_eq!(w.handle_timeout(start + secs(8)), None);
        assert_eq!(
            w.handle_timeout(start + secs(9)),
            Some(Stalled {
                unacked: 1,
                waited: secs(6)
            })
        );
        // An ack that releases nothing is no progress.
        assert_eq!(w.ack(1, start + secs(9)), Ok(0));
        assert_eq!(w.poll_timeout(), Some(start + secs(9)));
    }

    #[test]
    fn a_link_working_through_a_deep_backlog_is_not_stalled_while_it_acknowledges() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut w = Unacked::new(window(1_000, 1 << 20));
        for _ in 0..600 {
            w.sent((), 1, start);
        }
        // One event acknowledged every 20 ms: 12 s for the lot, far past the 5 s timeout for
        // the last ones, yet never 5 s without progress.
        for n in 1..=600u64 {
            let now = start + ms(20 * n);
            assert_eq!(w.handle_timeout(now), None, "stalled at event {n}");
            assert_eq!(w.ack(n, now), Ok(1));
        }
        assert_eq!(w.poll_timeout(), None);
    }

    #[test]
    fn acks_are_batched_by_count_and_by_delay() {
        let start = Instant::now();
        let ms = Duration::from_millis;
        let mut a = Acker::new(3, ms(20));
        assert_eq!(a.poll_timeout(), None);
        assert_eq!(a.taken(1, start), None);
        assert_eq!(a.poll_timeout(), Some(start + ms(20)));
        assert_eq!(a.taken(2, start + ms(1)), None);
        assert_eq!(
            a.taken(3, start + ms(2)),
            Some(3),
            "three taken: acknowledge"
        );
        assert_eq!(a.poll_timeout(), None);
        assert_eq!(a.taken(4, start + ms(30)), None);
        assert_eq!(a.handle_timeout(start + ms(49)), None);
        assert_eq!(
            a.handle_timeout(start + ms(50)),
            Some(4),
            "20 ms after the first"
        );
        assert_eq!(a.pending(), None);
        assert_eq!(a.taken(4, start + ms(60)), None, "taken twice");
        assert_eq!(a.taken(0, start + ms(60)), None);
    }

    #[test]
    fn an_ack_covers_only_events_with_none_missing_before_them() {
        let now = Instant::now();
        let mut a = Acker::new(100, Duration::from_secs(1));
        a.taken(2, now);
        a.taken(3, now);
        assert_eq!(a.pending(), None, "event 1 is not taken yet");
        a.taken(1, now);
        assert_eq!(a.pending(), Some(3));
        a.taken(5, now);
        assert_eq!(a.pending(), None);
    }

    /// Both ends at random: events written while the window has room, taken by the business
    /// in a random order, acknowledged as the acker says, the link sometimes lost. What the
    /// gateway still holds is always exactly what the business has not acknowledged, in
    /// order, and the window's bounds are never exceeded.
    #[test]
    fn at_random_the_gateway_holds_exactly_what_is_not_acknowledged() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        for _ in 0..200 {
            let start = Instant::now();
            let events = rng.random_range(1..20);
            let bytes = rng.random_range(1..400);
            let mut w = Unacked::new(window(events, bytes));
            let mut a = Acker::new(rng.random_range(1..8), Duration::from_millis(5));
            let mut in_flight: Vec<u64> = Vec::new();
            let mut acked = 0u64;
            for step in 0..300u64 {
                let now = start + Duration::from_millis(step);
                let size = rng.random_range(1..100);
                if w.has_room() {
                    let before = w.bytes();
                    let seq = w.sent(step, size, now);
                    assert!(
                        w.len() <= events && before < bytes,
                        "the window took an event while holding {} events, {before} bytes: over {events}, {bytes}",
                        w.len()
                    );
                    in_flight.push(seq);
                }
                in_flight.shuffle(&mut rng);
                let take = rng.random_range(0..=in_flight.len());
                for seq in in_flight.drain(..take) {
                    if let Some(up_to) = a.taken(seq, now) {
                        assert!(up_to > acked, "acks only move forward");
                        w.ack(up_to, now).expect("an ack covers only events sent");
                        acked = up_to;
                    }
                }
                if let Some(up_to) = a.handle_timeout(now) {
                    w.ack(up_to, now).expect("an ack covers only events sent");
                    acked = up_to;
                }
            }
            let held: Vec<u64> = w.into_items().map(|(seq, _)| seq).collect();
            let expected: Vec<u64> = (acked + 1..acked + 1 + held.len() as u64).collect();
            assert_eq!(
                held, expected,
                "the gateway holds the run after the last ack"
            );
        }
    }
}
