//! The Rust SDK for wsgate business processes.
//!
//! A business process holds a worker link to a wsgate gateway: it receives the events of the
//! gateway's client WebSocket connections (open, message, close) and answers with commands.
//! The SDK does the protocol work: the register handshake, heartbeats both ways, matching
//! replies to requests, reconnecting with backoff and jitter, and failing fast while the link
//! is down.
//!
//! What a [`Client`] can do:
//!
//! - **Casts**: send to one connection, several, or all ([`Client::single_cast`],
//!   [`Client::multicast`], [`Client::broadcast`]); close connections
//!   ([`Client::force_offline`]).
//! - **Users**: bind a user id to a connection ([`Client::bind_user`]), then reach all of a
//!   user's connections ([`Client::send_to_users`], [`Client::force_offline_users`]). Events
//!   of a bound connection carry its user id.
//! - **Topics**: [`Client::subscribe`] connections or users ([`Targets`]), [`Client::publish`]
//!   to topics, [`Client::delete_topics`].
//! - **Session data**: a small string map per connection, changed with [`Client::set_session`]
//!   ([`SessionChange`]) and handed back in every message and close event.
//! - **Queries**: [`Client::online`], [`Client::conn_info`], [`Client::counts`],
//!   [`Client::list`] / [`Client::list_all`] ([`ListKind`]).
//! - **Handshake hook**: with [`ClientBuilder::authorize`], decide on every client handshake
//!   ([`Event::Authorize`], [`AuthorizeCall`]): allow (binding a user, topics, session, a first
//!   message) or deny with 401/403.
//!
//! Several gateways: a [`Cluster`] connects to every gateway a [`Discovery`] names
//! ([`StaticDiscovery`] or [`DnsDiscovery`]) and offers the same commands, routing
//! connection-id commands to the owning gateway (by the node id in the id) and sending user,
//! topic and broadcast commands and queries to all, merging the answers ([`ClusterReport`],
//! [`Partial`]). Its events arrive on one stream, [`ClusterEvents`], tagged with the gateway.
//!
//! ```no_run
//! use wsgate_business::{Client, Event, EventKind};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), wsgate_business::Error> {
//!     let (client, mut events) = Client::builder("127.0.0.1:8081")
//!         .name("echo")
//!         .events([EventKind::Message])
//!         .connect()
//!         .await?;
//!     while let Some(event) = events.recv().await {
//!         if let Event::Message(msg) = event {
//!             if let Some(payload) = msg.payload {
//!                 if let Err(err) = client.single_cast(msg.conn_id, payload).await {
//!                     eprintln!("echo failed: {err}");
//!                 }
//!             }
//!         }
//!     }
//!     Ok(())
//! }
//! ```
//!
//! Modules: [`ClientBuilder`] (settings), [`Client`] (commands), [`Events`] (what happens),
//! [`AuthorizeCall`] (answering a handshake), [`Targets`] and [`SessionChange`] (command
//! arguments), [`Report`] (what a command achieved), [`Error`]; [`cluster`] (the cluster client,
//! its builder, events, reports and gateway status) with [`Discovery`]. The link driver, the
//! wire form of the commands and the backoff are private.

#![warn(missing_docs)]

mod authorize;
mod builder;
mod client;
pub mod cluster;
mod command;
mod config;
mod discovery;
mod dns;
mod error;
mod events;
mod link;
mod outgoing;
mod report;
mod session_change;
mod targets;
mod tls;

pub use authorize::AuthorizeCall;
pub use builder::ClientBuilder;
pub use client::Client;
pub use cluster::{
    Cluster, ClusterBuilder, ClusterEvent, ClusterEvents, ClusterReport, GatewayFailure,
    GatewayState, GatewayStatus, InProcess, InProcessAnswer, Partial,
};
pub use config::{DEFAULT_NAME, DEFAULT_REQUEST_TIMEOUT};
pub use discovery::{Discovery, StaticDiscovery};
pub use dns::DnsDiscovery;
pub use error::{Error, ErrorClass};
pub use events::{AckPoint, Event, Events};
pub use report::Report;
pub use session_change::SessionChange;
pub use targets::Targets;
pub use tls::TlsOptions;

/// The worker protocol crate, for the generated types not re-exported here.
pub use wsgate_proto as proto;
pub use wsgate_proto::v1::{
    Authorize, AuthorizeReply, ClosedBy, ConnClose, ConnInfo, ConnMessage, ConnOpen, CountsReply,
    Delivery, ErrorCode, EventKind, ListKind, ListReply, OnlineReply, Payload, PayloadKind,
    Receipt, TopicCount,
};
