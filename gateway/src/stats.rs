//! Counters the gateway keeps about itself: plain atomics, cheap on the hot path, and
//! [`Striped`] ones for the few changed on every delivery.
//!
//! Tests read them to check that a policy fired (a slow consumer was closed, a message was
//! dropped); `/metrics` (api/metrics.rs) exports them in the Prometheus text format.

mod consumers;
mod histogram;
mod labels;
mod striped;

use std::sync::atomic::{AtomicU64, Ordering};

pub use consumers::{BadReason, ConsumerStats, Consumers};
pub use histogram::{BOUNDS_SECONDS, Histogram};
pub use labels::{CloseReason, CommandKind};
pub use striped::Striped;

/// Gateway-wide counters. All are totals since start except the `*_current` gauges.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections_current: AtomicU64,
    pub connections_total: AtomicU64,
    pub messages_in: Striped,
    pub messages_out: Striped,
    /// Payload bytes of client data messages received and written (text and binary).
    pub bytes_in: Striped,
    pub bytes_out: Striped,
    pub closed_slow_consumer: AtomicU64,
    pub closed_too_big: AtomicU64,
    pub closed_idle: AtomicU64,
    /// Client messages dropped because no business process wants message events.
    pub dropped_no_business: AtomicU64,
    /// Messages not queued because the recipient's queue was full (it is closed for it).
    pub dropped_slow_consumer: AtomicU64,
    /// Client messages dropped by the message rate limit (with --client-rate-limit-action drop).
    pub dropped_rate_limited: AtomicU64,
    /// Bytes queued to clients right now, being written included (a gauge).
    pub client_queued_bytes: Striped,
    /// Clients closed for sending faster than --client-message-rate (1008).
    pub closed_rate_limited: AtomicU64,
    /// Handshakes refused with 429: over the per-address rate, or the user's connection limit.
    pub handshakes_rate_limited: AtomicU64,
    pub handshakes_user_limited: AtomicU64,
    /// Connections closed because their user opened more than --max-connections-per-user.
    pub closed_replaced: AtomicU64,
    /// Frames a worker link could not carry because they would exceed --max-frame-bytes
    /// (replaced by an error answer, or an event dropped); 0 unless something is misconfigured.
    pub frames_too_large: AtomicU64,
    /// Business processes registered (the gateways' own cluster-client links not included).
    pub links_current: AtomicU64,
    /// Links of gateways' cluster clients (name "wsgate-peer"), this gateway's own included.
    pub peer_links_current: AtomicU64,
    /// Events handed to another business process after the one they were written to did
    /// not acknowledge them (its link died or stalled); links with acks only.
    pub events_redelivered: AtomicU64,
    /// Events written to links with acks and not yet acknowledged (a gauge).
    pub events_unacked: AtomicU64,
    /// `Ack` frames taken from links with acks.
    pub acks_received: AtomicU64,
    /// Worker links closed because their oldest event waited past --worker-ack-timeout.
    pub links_ack_timeouts: AtomicU64,
    /// Events that waited for a business process to register (`--no-business-wait`).
    pub events_waited_for_business: AtomicU64,
    /// Commands answered from the command-id window: retries not carried out again.
    pub commands_deduplicated: AtomicU64,
    /// 1 while the stream engine keeps history (always, in memory; Redis answering), else 0.
    pub stream_engine_up: AtomicU64,
    /// Streams held now (a gauge; docs/streams.md).
    pub streams_current: AtomicU64,
    /// Messages published to streams (each got an offset and went into a history).
    pub stream_publications: AtomicU64,
    /// Topics or users that would have been new streams past --max-streams.
    pub stream_history_refused: AtomicU64,
    /// Joins of a stream by a client that gave a position: given everything after it, or not.
    pub stream_recovered: AtomicU64,
    pub stream_not_recovered: AtomicU64,
    /// Text frames from wsgate.stream.v1 clients that were not frames of the subprotocol.
    pub client_protocol_errors: AtomicU64,
    /// Acknowledgements from clients that settled a receipt.
    pub client_acks: AtomicU64,
    pub commands: AtomicU64,
    pub command_errors: AtomicU64,
    /// Client connections closed, indexed by [`CloseReason`].
    closes: [AtomicU64; CloseReason::ALL.len()],
    /// Commands and failed commands, indexed by [`CommandKind`].
    commands_by_kind: [AtomicU64; CommandKind::ALL.len()],
    command_errors_by_kind: [AtomicU64; CommandKind::ALL.len()],
    /// From a connection event's creation to its place in a business process's link queue.
    pub event_dispatch: Histogram,
    /// The consumers' counters and states (docs/consumers.md).
    pub consumers: Consumers,
}

impl Stats {
    pub(crate) fn incr(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn decr(counter: &AtomicU64) {
        counter.fetch_sub(1, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Counts one closed client connection.
    pub(crate) fn closed(&self, reason: CloseReason) {
        Self::incr(&self.closes[reason as usize]);
    }

    /// Client connections closed for `reason` since start.
    pub fn closes(&self, reason: CloseReason) -> u64 {
        Self::get(&self.closes[reason as usize])
    }

    /// Counts one command, and its failure when `failed`.
    pub(crate) fn command(&self, kind: CommandKind, failed: bool) {
        Self::incr(&self.commands);
        Self::incr(&self.commands_by_kind[kind as usize]);
        if failed {
            Self::incr(&self.command_errors);
            Self::incr(&self.command_errors_by_kind[kind as usize]);
        }
    }

    /// Commands of `kind` since start.
    pub fn commands_of(&self, kind: CommandKind) -> u64 {
        Self::get(&self.commands_by_kind[kind as usize])
    }

    /// Failed commands of `kind` since start.
    pub fn command_errors_of(&self, kind: CommandKind) -> u64 {
        Self::get(&self.command_errors_by_kind[kind as usize])
    }
}
