//! The connections of one gateway: who is connected ([`registry`], each with its queue), what
//! business processes attached to them and the user and topic indexes that find them
//! ([`state`]), the seats under `--max-connections` ([`limit`]), the per-user limit
//! ([`users`]), the streams some topics and users are ([`streams`]) and the ids
//! ([`ConnIdGenerator`]). One owner, [`Connections`], passed to what
//! reaches connections: the client side adds and removes them, the worker commands and the
//! APIs read and change them.
//!
//! The invariants live in the parts: a connection's lock carries its id, so an index change
//! made under it is about that connection ([`state`]); a queue is bounded in frames and bytes
//! ([`registry`]); a seat is given back when dropped ([`limit`]).

pub(crate) mod limit;
pub(crate) mod message;
pub(crate) mod receipts;
pub(crate) mod registry;
pub(crate) mod state;
pub(crate) mod streams;
pub(crate) mod users;

use std::sync::Arc;

use wsgate_proto::ConnIdGenerator;

use self::limit::ConnectionLimit;
use self::registry::{QueueLimit, Registry};
use self::state::Indexes;
use self::streams::Streams;
use self::streams::redis::RedisEngine;
use self::streams::rules::Rule;
use crate::stats::Stats;

/// Everything about the live connections, behind one handle.
#[derive(Debug)]
pub(crate) struct Connections {
    pub ids: ConnIdGenerator,
    pub registry: Registry,
    pub indexes: Indexes,
    /// Seats for clients (`--max-connections`).
    pub limit: Arc<ConnectionLimit>,
    /// The topics and users that are streams, and their histories (`--stream`).
    pub streams: Streams,
}

impl Connections {
    pub(crate) fn new(
        ids: ConnIdGenerator,
        queue: QueueLimit,
        max_connections: usize,
        stats: Arc<Stats>,
    ) -> Self {
        Self {
            ids,
            registry: Registry::new(queue, stats.clone()),
            indexes: Indexes::default(),
            limit: ConnectionLimit::new(max_connections),
            streams: Streams::new(Vec::new(), 0, None, stats),
        }
    }

    /// With the streams of `rules`, at most `max` of them, their history in `redis` or (`None`)
    /// in memory.
    pub(crate) fn with_streams(
        mut self,
        rules: Vec<Rule>,
        max: usize,
        redis: Option<RedisEngine>,
    ) -> Self {
        self.streams = Streams::new(rules, max, redis, self.registry.stats().clone());
        self
    }
}
