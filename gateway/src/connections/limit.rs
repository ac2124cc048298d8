//! The most clients one gateway holds at once (`--max-connections`, by default what the
//! open-file limit leaves room for).
//!
//! Past the limit a handshake is answered with HTTP 503 and `Retry-After`, so a client or a
//! load balancer gets a clear answer and can go elsewhere, instead of the gateway running out
//! of descriptors and leaving new clients hanging in the listen backlog. A client holds a
//! [`Seat`] from the moment its handshake is accepted until its connection task ends.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::throttle::Throttle;

/// How often a gateway that keeps refusing says so again.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// Seats for clients: taken by an accepted handshake, given back when the connection ends.
#[derive(Debug)]
pub(crate) struct ConnectionLimit {
    max: usize,
    held: AtomicUsize,
    refused: AtomicU64,
    /// At most one warning about refusals per WARN_EVERY.
    warned: Mutex<Throttle>,
}

impl ConnectionLimit {
    /// A limit of `max` clients; `usize::MAX` for none.
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            held: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            warned: Mutex::new(Throttle::new(WARN_EVERY)),
        })
    }

    /// The limit in force.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Handshakes refused because every seat was taken, since start.
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// A seat, or `None` (counted and, at most once a minute, logged) when all are taken.
    pub(crate) fn take(self: &Arc<Self>) -> Option<Seat> {
        let taken = self
            .held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < self.max).then_some(held + 1)
            });
        if taken.is_ok() {
            return Some(Seat(self.clone()));
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.warn();
        None
    }

    fn warn(&self) {
        let due = {
            let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
            warned.tick(Instant::now())
        };
        let Some(since) = due else {
            return;
        };
        tracing::warn!(
            max_connections = self.max,
            refused = since,
            "the gateway holds its maximum number of clients: new handshakes get HTTP 503 until some leave; \
             raise --max-connections (and the open-file limit: ulimit -Hn, LimitNOFILE=) or add gateways"
        );
    }
}

/// One client's place under the limit; given back when dropped.
#[derive(Debug)]
pub(crate) struct Seat(Arc<ConnectionLimit>);

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seats_run_out_and_come_back() {
        let limit = ConnectionLimit::new(2);
        let a = limit.take().expect("first seat");
        let _b = limit.take().expect("second seat");
        assert!(limit.take().is_none(), "a third client is refused");
        assert!(limit.take().is_none());
        assert_eq!(limit.refused(), 2);
        drop(a);
        let _c = limit.take().expect("a seat given back is taken again");
        assert!(limit.take().is_none());
        assert_eq!(limit.refused(), 3);
    }

    #[test]
    fn no_limit_never_refuses() {
        let limit = ConnectionLimit::new(usize::MAX);
        let seats: Vec<_> = (0..1000).filter_map(|_| limit.take()).collect();
        assert_eq!(seats.len(), 1000);
        assert_eq!(limit.refused(), 0);
    }
}
