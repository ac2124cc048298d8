//! The requests of one end of a worker link that wait for their answer: request ids, matching
//! an answer to its waiter, and giving up on a request past its deadline.
//!
//! The protocol's rules (`docs/protocol.md` section 4): the sender picks the ids, unique among
//! its requests still waiting; 0 means "no answer wanted", so it is never handed out and never
//! matches; and the two directions have separate id spaces, so only answers to *our* requests
//! (`Result`, or an `Error` carrying our id) are looked up here, never an incoming
//! `Authorize`. The waiter `W` is whatever the owner wakes its caller with (a channel sender,
//! a callback): the table only keeps it.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use wsgate_proto::link::Requests;
//!
//! let now = Instant::now();
//! let mut requests = Requests::new();
//! let id = requests.start("caller a", now + Duration::from_secs(10));
//! assert_eq!(requests.finish(id), Some("caller a"));
//! assert_eq!(requests.finish(id), None, "answered once");
//! assert_eq!(requests.finish(0), None, "0 never matches");
//! ```

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

/// The waiting requests, by request id.
#[derive(Debug)]
pub struct Requests<W> {
    next_id: u64,
    waiting: HashMap<u64, Waiting<W>>,
    /// `(deadline, request id)` of every waiting request, earliest first.
    deadlines: BTreeSet<(Instant, u64)>,
}

#[derive(Debug)]
struct Waiting<W> {
    waiter: W,
    deadline: Instant,
}

impl<W> Default for Requests<W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<W> Requests<W> {
    /// An empty table whose first id is 1.
    pub fn new() -> Self {
        Self {
            next_id: 1,
            waiting: HashMap::new(),
            deadlines: BTreeSet::new(),
        }
    }

    /// Registers a request that gives up at `deadline` and returns its id: never 0, and never
    /// the id of a request still waiting (the counter wraps after `u64::MAX`).
    pub fn start(&mut self, waiter: W, deadline: Instant) -> u64 {
        let id = self.fresh_id();
        self.waiting.insert(id, Waiting { waiter, deadline });
        self.deadlines.insert((deadline, id));
        id
    }

    /// The answer to `request_id` arrived: its waiter, if it still waits (`None` for 0, for
    /// an id never handed out, and for one answered or expired already).
    pub fn finish(&mut self, request_id: u64) -> Option<W> {
        let waiting = self.waiting.remove(&request_id)?;
        self.deadlines.remove(&(waiting.deadline, request_id));
        Some(waiting.waiter)
    }

    /// The earliest deadline of a waiting request.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }

    /// A request whose deadline is at or before `now`, taken out of the table with its id;
    /// call until `None`.
    pub fn poll_expired(&mut self, now: Instant) -> Option<(u64, W)> {
        let &(deadline, id) = self.deadlines.first()?;
        if deadline > now {
            return None;
        }
        self.finish(id).map(|waiter| (id, waiter))
    }

    /// Forgets the requests whose waiter `keep` refuses (a caller that gave up), without
    /// waiting for their deadline.
    pub fn retain(&mut self, mut keep: impl FnMut(&W) -> bool) {
        let deadlines = &mut self.deadlines;
        self.waiting.retain(|id, waiting| {
            let kept = keep(&waiting.waiter);
            if !kept {
                deadlines.remove(&(waiting.deadline, *id));
            }
            kept
        });
    }

    /// Takes every waiting request out (the link ended: none of them will be answered).
    pub fn drain(&mut self) -> Vec<W> {
        self.deadlines.clear();
        self.waiting.drain().map(|(_, w)| w.waiter).collect()
    }

    /// How many requests wait.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether none waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    fn fresh_id(&mut self) -> u64 {
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.wrapping_add(1);
            if id != 0 && !self.waiting.contains_key(&id) {
                return id;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn request_ids_are_never_zero() {
        let now = Instant::now();
        let mut requests = Requests::new();
        requests.next_id = u64::MAX;
        assert_eq!(requests.start((), now), u64::MAX);
        assert_eq!(requests.start((), now), 1);
    }

    #[test]
    fn ids_still_waiting_are_skipped_after_a_wrap() {
        let now = Instant::now();
        let mut requests = Requests::new();
        assert_eq!(requests.start("a", now + secs(60)), 1);
        requests.next_id = u64::MAX;
        assert_eq!(requests.start("b", now), u64::MAX);
        assert_eq!(requests.start("c", now), 2, "1 still waits");
    }

    #[test]
    fn replies_with_id_zero_match_nothing() {
        let mut requests: Requests<()> = Requests::new();
        assert!(requests.finish(0).is_none());
    }

    #[test]
    fn answers_match_their_waiter_once() {
        let now = Instant::now();
        let mut requests = Requests::new();
        let a = requests.start("a", now + secs(1));
        let b = requests.start("b", now + secs(1));
        assert_ne!(a, b);
        assert_eq!(requests.finish(b), Some("b"));
        assert_eq!(requests.finish(b), None);
        assert_eq!(requests.len(), 1);
        assert_eq!(requests.finish(a), Some("a"));
        assert!(requests.is_empty());
        assert_eq!(requests.poll_timeout(), None);
    }

    #[test]
    fn requests_expire_at_their_deadline_in_order() {
        let t0 = Instant::now();
        let mut requests = Requests::new();
        let late = requests.start("late", t0 + secs(3));
        let early = requests.start("early", t0 + secs(1));
        assert_eq!(requests.poll_timeout(), Some(t0 + secs(1)));
        assert_eq!(requests.poll_expired(t0), None);
        assert_eq!(requests.poll_expired(t0 + secs(1)), Some((early, "early")));
        assert_eq!(requests.poll_expired(t0 + secs(1)), None);
        assert_eq!(requests.poll_timeout(), Some(t0 + secs(3)));
        assert_eq!(
            requests.finish(early),
            None,
            "an expired request is not answered"
        );
        assert_eq!(requests.poll_expired(t0 + secs(9)), Some((late, "late")));
        assert!(requests.is_empty());
    }

    #[test]
    fn an_answer_cancels_the_deadline() {
        let t0 = Instant::now();
        let mut requests = Requests::new();
        let id = requests.start("a", t0 + secs(1));
        assert_eq!(requests.finish(id), Some("a"));
        assert_eq!(requests.poll_timeout(), None);
        assert_eq!(requests.poll_expired(t0 + secs(5)), None);
    }

    #[test]
    fn retain_and_drain_empty_the_table() {
        let t0 = Instant::now();
        let mut requests = Requests::new();
        requests.start(1, t0 + secs(1));
        requests.start(2, t0 + secs(2));
        requests.start(3, t0 + secs(3));
        requests.retain(|w| *w != 1);
        assert_eq!(requests.len(), 2);
        assert_eq!(requests.poll_timeout(), Some(t0 + secs(2)));
        let mut rest = requests.drain();
        rest.sort_unstable();
        assert_eq!(rest, [2, 3]);
        assert_eq!(requests.poll_timeout(), None);
    }
}
