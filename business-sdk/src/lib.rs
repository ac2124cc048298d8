//! The Rust SDK for wsgate business processes.
//!
//! A business process holds a worker link to a wsgate gateway: it receives the events of the
//! gateway's client WebSocket connections (open, message, close) and answers with commands
//! (single cast, multicast, broadcast, force offline). The SDK does the protocol work: the
//! register handshake, heartbeats both ways, matching replies to requests, reconnecting with
//! backoff and jitter, and failing fast while the link is down.
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
//! [`Report`] (what a command achieved), [`Error`]; the link driver and the backoff are private.

#![warn(missing_docs)]

mod backoff;
mod builder;
mod client;
mod error;
mod events;
mod link;
mod report;

pub use builder::{ClientBuilder, DEFAULT_NAME, DEFAULT_REQUEST_TIMEOUT};
pub use client::Client;
pub use error::Error;
pub use events::{Event, Events};
pub use report::Report;

/// The worker protocol crate, for the generated types not re-exported here.
pub use wsgate_proto as proto;
pub use wsgate_proto::v1::{
    ClosedBy, ConnClose, ConnMessage, ConnOpen, ErrorCode, EventKind, Payload, PayloadKind,
};
