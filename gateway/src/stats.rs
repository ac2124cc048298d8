//! Counters the gateway keeps about itself: plain atomics, cheap on the hot path.
//!
//! Tests read them to check that a policy fired (a slow consumer was closed, a message was
//! dropped); the Prometheus endpoint of a later issue exports them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Gateway-wide counters. All are totals since start except the `*_current` gauges.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections_current: AtomicU64,
    pub connections_total: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub closed_slow_consumer: AtomicU64,
    pub closed_too_big: AtomicU64,
    pub closed_idle: AtomicU64,
    pub dropped_no_business: AtomicU64,
    /// Business processes registered (the gateways' own cluster-client links not included).
    pub links_current: AtomicU64,
    /// Links of gateways' cluster clients (name "wsgate-peer"), this gateway's own included.
    pub peer_links_current: AtomicU64,
    pub commands: AtomicU64,
    pub command_errors: AtomicU64,
}

impl Stats {
    pub(crate) fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn decr(counter: &AtomicU64) {
        counter.fetch_sub(1, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
