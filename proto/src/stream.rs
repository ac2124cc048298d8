//! One stream's history, without I/O: offsets, the epoch, the bounds, and what a client that
//! was away can be given again (issue 14's streams; the in-memory engine keeps one [`History`]
//! per stream, and any other engine must decide recovery the same way).
//!
//! Every message published to a stream gets the next **offset** (1, 2, 3, …). The **epoch**
//! names one unbroken run of offsets: an engine that loses a stream's history (a restart, a
//! Redis failover) starts it again under a new epoch, so a position `(epoch, offset)` from
//! before can never be mistaken for one after. The history keeps the most recent messages
//! within three bounds — a count, bytes and an age — and forgets the oldest first.
//!
//! **Recovery** is the one rule clients rely on: a client that last saw `(epoch, offset)` is
//! given every message after it, in order, or is told that it cannot be (`NotRecovered`) — never
//! a silent gap. It is recovered exactly when the epoch is the stream's and no message after its
//! offset has been forgotten. The invariant is tested at random against a log of everything
//! published.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How much of a stream is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Messages kept at most (1 is the cache mode: the latest only).
    pub messages: usize,
    /// Bytes of messages kept at most; the latest message is kept whatever its size.
    pub bytes: usize,
    /// How long a message is kept.
    pub age: Duration,
}

/// Where a client was in a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    /// The stream's epoch when the client was there.
    pub epoch: String,
    /// The last offset it received; 0 for none.
    pub offset: u64,
}

/// Why a client cannot be given everything it missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gap {
    /// The stream's history was lost since (another epoch).
    Epoch,
    /// Messages after the client's offset have been forgotten (bounds).
    Trimmed,
    /// The client names an offset the stream never reached in this epoch.
    Ahead,
}

/// What a returning client gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery<T> {
    /// Every message after its position, oldest first (empty: it missed nothing).
    Recovered(Vec<(u64, T)>),
    /// It missed something that is gone: the application must fetch the state again. The
    /// latest message kept, if any (what a cache-mode stream shows first).
    NotRecovered { gap: Gap, latest: Option<(u64, T)> },
}

#[derive(Debug)]
struct Entry<T> {
    offset: u64,
    at: Instant,
    bytes: usize,
    item: T,
}

/// Why a client that was at `since` cannot be given everything after it, in a stream now at
/// `now` whose oldest kept message is `first_kept`; `None` when it can. The one rule of
/// recovery, for every engine: recovered exactly when the epoch is the stream's and no message
/// after `since` has been forgotten.
pub fn gap(since: &Position, now: &Position, first_kept: Option<u64>) -> Option<Gap> {
    if since.epoch != now.epoch {
        Some(Gap::Epoch)
    } else if since.offset > now.offset {
        Some(Gap::Ahead)
    } else if since.offset == now.offset {
        None
    } else {
        // Something after `since` was published: is the first of it still kept?
        let first_kept = first_kept.unwrap_or(now.offset + 1);
        (first_kept > since.offset + 1).then_some(Gap::Trimmed)
    }
}

/// One stream: its epoch, its next offset and what it keeps.
#[derive(Debug)]
pub struct History<T> {
    epoch: String,
    /// The last offset given; 0 before the first message.
    last: u64,
    kept: VecDeque<Entry<T>>,
    bytes: usize,
    bounds: Bounds,
}

impl<T: Clone> History<T> {
    /// An empty stream under `epoch`.
    pub fn new(epoch: String, bounds: Bounds) -> Self {
        Self {
            epoch,
            last: 0,
            kept: VecDeque::new(),
            bytes: 0,
            bounds,
        }
    }

    /// Where the stream is now: its epoch and the last offset given.
    pub fn position(&self) -> Position {
        Position {
            epoch: self.epoch.clone(),
            offset: self.last,
        }
    }

    /// Appends `item` (of `bytes`) published at `now`; its offset.
    pub fn publish(&mut self, item: T, bytes: usize, now: Instant) -> u64 {
        self.last += 1;
        self.kept.push_back(Entry {
            offset: self.last,
            at: now,
            bytes,
            item,
        });
        self.bytes += bytes;
        self.trim(now);
        self.last
    }

    /// Forgets what is past the bounds at `now`, oldest first (the latest message stays while
    /// it is younger than the age bound).
    pub fn trim(&mut self, now: Instant) {
        while let Some(oldest) = self.kept.front() {
            let too_many = self.kept.len() > self.bounds.messages.max(1);
            let too_big = self.bytes > self.bounds.bytes && self.kept.len() > 1;
            let too_old = now.saturating_duration_since(oldest.at) >= self.bounds.age;
            if !(too_many || too_big || too_old) {
                break;
            }
            self.bytes -= oldest.bytes;
            self.kept.pop_front();
        }
    }

    /// What a client that was at `since` gets now.
    pub fn recover(&mut self, since: &Position, now: Instant) -> Recovery<T> {
        self.trim(now);
        let latest = || self.kept.back().map(|e| (e.offset, e.item.clone()));
        let first_kept = self.kept.front().map(|e| e.offset);
        match gap(since, &self.position(), first_kept) {
            Some(gap) => Recovery::NotRecovered {
                gap,
                latest: latest(),
            },
            None => Recovery::Recovered(
                self.kept
                    .iter()
                    .filter(|e| e.offset > since.offset)
                    .map(|e| (e.offset, e.item.clone()))
                    .collect(),
            ),
        }
    }

    /// The latest message kept at `now`, if any (what a cache-mode stream gives a client that
    /// joins).
    pub fn latest(&mut self, now: Instant) -> Option<(u64, T)> {
        self.trim(now);
        self.kept.back().map(|e| (e.offset, e.item.clone()))
    }

    /// What is kept, oldest first, with offsets (trim first for what is kept at a time).
    pub fn kept(&self) -> impl Iterator<Item = (u64, &T)> {
        self.kept.iter().map(|e| (e.offset, &e.item))
    }

    /// Messages kept now.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    fn bounds(messages: usize, bytes: usize, secs: u64) -> Bounds {
        Bounds {
            messages,
            bytes,
            age: Duration::from_secs(secs),
        }
    }

    fn at(epoch: &str, offset: u64) -> Position {
        Position {
            epoch: epoch.into(),
            offset,
        }
    }

    #[test]
    fn a_client_gets_what_it_missed_or_is_told_it_cannot() {
        let t0 = Instant::now();
        let mut h = History::new("e1".into(), bounds(3, 1 << 20, 60));
        for n in 1..=5u64 {
            assert_eq!(h.publish(n * 10, 1, t0), n);
        }
        // Kept: 3, 4, 5.
        assert_eq!(h.recover(&at("e1", 5), t0), Recovery::Recovered(vec![]));
        assert_eq!(
            h.recover(&at("e1", 2), t0),
            Recovery::Recovered(vec![(3, 30), (4, 40), (5, 50)])
        );
        assert_eq!(
            h.recover(&at("e1", 1), t0),
            Recovery::NotRecovered {
                gap: Gap::Trimmed,
                latest: Some((5, 50))
            }
        );
        assert!(matches!(
            h.recover(&at("e0", 5), t0),
            Recovery::NotRecovered {
                gap: Gap::Epoch,
                ..
            }
        ));
        assert!(matches!(
            h.recover(&at("e1", 6), t0),
            Recovery::NotRecovered {
                gap: Gap::Ahead,
                ..
            }
        ));
    }

    #[test]
    fn cache_mode_keeps_the_latest_and_age_forgets_it() {
        let t0 = Instant::now();
        let mut h = History::new("e".into(), bounds(1, 1 << 20, 10));
        h.publish("40%", 3, t0);
        h.publish("41%", 3, t0);
        assert_eq!(h.len(), 1);
        // A new client (offset 0) missed 40 %: not recovered, but shown the latest.
        assert_eq!(
            h.recover(&at("e", 0), t0),
            Recovery::NotRecovered {
                gap: Gap::Trimmed,
                latest: Some((2, "41%"))
            }
        );
        let later = t0 + Duration::from_secs(10);
        assert_eq!(
            h.recover(&at("e", 0), later),
            Recovery::NotRecovered {
                gap: Gap::Trimmed,
                latest: None
            }
        );
        assert!(h.is_empty());
    }

    /// Random publishes, clock steps and returning clients, against a log of everything
    /// published: the bounds always hold, and a client is recovered exactly when nothing after
    /// its position was forgotten, with exactly what it missed.
    #[test]
    fn recovery_is_exact_and_the_bounds_hold() {
        let mut rng = StdRng::seed_from_u64(14);
        for _ in 0..100 {
            let b = bounds(
                rng.random_range(1..10),
                rng.random_range(1..200),
                rng.random_range(1..20),
            );
            let mut now = Instant::now();
            let mut h = History::new("e".into(), b);
            // Everything published: (offset, when, bytes).
            let mut log: Vec<(u64, Instant, usize)> = Vec::new();
            for _ in 0..300 {
                match rng.random_range(0..10) {
                    0..=5 => {
                        let bytes = rng.random_range(0..60);
                        let offset = h.publish(bytes, bytes, now);
                        log.push((offset, now, bytes));
                    }
                    6 => now += Duration::from_secs(rng.random_range(0..5)),
                    _ => {
                        let top = log.len() as u64;
                        let since = rng.random_range(0..=top + 1);
                        match h.recover(&at("e", since), now) {
                            Recovery::Recovered(items) => {
                                let want: Vec<u64> = (since + 1..=top).collect();
                                let got: Vec<u64> = items.iter().map(|(o, _)| *o).collect();
                                assert_eq!(got, want, "exactly what it missed");
                                for (o, item) in items {
                                    assert_eq!(item, log[(o - 1) as usize].2, "the item itself");
                                }
                            }
                            Recovery::NotRecovered { gap, latest } => {
                                match gap {
                                    Gap::Ahead => assert!(since > top),
                                    Gap::Trimmed => {
                                        assert!(since < top);
                                        let kept: Vec<u64> =
                                            h.kept.iter().map(|e| e.offset).collect();
                                        assert!(!kept.contains(&(since + 1)), "it was forgotten");
                                    }
                                    Gap::Epoch => panic!("one epoch in this test"),
                                }
                                assert_eq!(latest.map(|(o, _)| o), h.kept.back().map(|e| e.offset));
                            }
                        }
                    }
                }
                // An engine trims whenever it touches the stream.
                h.trim(now);
                // The bounds: count, bytes (unless one message alone), age; kept in order and
                // contiguous up to the last offset.
                assert!(h.len() <= b.messages);
                assert!(h.bytes <= b.bytes || h.len() == 1);
                assert_eq!(h.bytes, h.kept.iter().map(|e| e.bytes).sum::<usize>());
                assert!(h.kept.iter().all(|e| now.duration_since(e.at) < b.age));
                let offsets: Vec<u64> = h.kept.iter().map(|e| e.offset).collect();
                if let (Some(first), Some(last)) = (offsets.first(), offsets.last()) {
                    assert_eq!(*last, log.len() as u64, "the latest is kept if any is");
                    assert_eq!(offsets, (*first..=*last).collect::<Vec<_>>());
                }
            }
        }
    }
}
