//! The cluster client: one logical service over many gateways.
//!
//! A [`Cluster`] holds one worker link to every gateway that a [`Discovery`] names (a static
//! list or a DNS name, asked again every `rediscover_every`), each driven exactly like a
//! [`Client`](crate::Client)'s link: its own heartbeat, reconnect with backoff and jitter, and
//! re-register. On top of the links it routes:
//!
//! - **Connection-id commands** go to the gateway whose node id is in the connection id (the
//!   node id each gateway sent at registration). One target ([`Cluster::single_cast`],
//!   [`Cluster::bind_user`], [`Cluster::unbind_user`], [`Cluster::set_session`]) answers like a
//!   `Client`, and fails fast with [`Error::GatewayUnavailable`] when that gateway is not
//!   connected. Lists ([`Cluster::multicast`], [`Cluster::force_offline`],
//!   [`Cluster::conn_info`], the connection ids of [`Cluster::subscribe`] /
//!   [`Cluster::online`]) are split per owner, and ids of an unavailable gateway are reported
//!   in `failed`.
//! - **User, topic and broadcast commands and the queries** go to every gateway at once; the
//!   answers are merged ([`ClusterReport`], [`Partial`]): counts summed, lists merged in order
//!   without repeats, a user unknown only when no gateway knows them.
//! - **Events** of every gateway arrive on one stream, [`ClusterEvents`], each tagged with its
//!   gateway's node id and address.
//!
//! A gateway that does not answer (down, timed out, disconnected) is never skipped silently: it
//! is named in `failed`. A gateway that announces its shutdown ([`Event::Draining`](crate::Event::Draining)) keeps
//! being used until it closes the link; then its connections' commands fail fast and its
//! address is retried with backoff (it may come back after a restart).
//!
//! Modules: `client` (the [`Cluster`] handle and its commands), `builder` (settings,
//! connect), `members` (one link per discovered address, rediscovery), `route` (which gateway
//! gets what), `fan_out` (sending to many at once), `merge` (combining answers), `report`
//! (what a command achieved), `events` (the one receiver), `status` (what each gateway is
//! doing), `in_process` (a gateway in this process, reached by a call). Data flows one way: `builder` makes the `members` and the `client` over them; the
//! `client` asks `fan_out`, which asks `route` and the links.

mod builder;
mod client;
mod events;
mod fan_out;
mod in_process;
mod members;
mod merge;
mod report;
mod route;
mod status;
#[cfg(test)]
mod tests;

pub use self::builder::{ClusterBuilder, DEFAULT_REDISCOVER_EVERY};
pub use self::client::Cluster;
pub use self::events::ClusterEvents;
pub use self::in_process::{InProcess, InProcessAnswer};
pub use self::report::{ClusterReport, GatewayFailure, Partial};
pub use self::status::GatewayStatus;
pub use crate::discovery::{Discovery, StaticDiscovery};
pub use crate::dns::DnsDiscovery;
pub use crate::events::ClusterEvent;
pub use crate::link::GatewayState;
