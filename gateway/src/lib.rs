//! wsgate: a WebSocket gateway that holds client connections and forwards their events to
//! business processes over a framed protobuf worker link.
//!
//! The binary (`src/main.rs`) parses [`Config`] and runs a [`Gateway`] until SIGINT/SIGTERM.
//! Embedders and tests bind one on `127.0.0.1:0` and pass their own shutdown future:
//!
//! ```no_run
//! # async fn demo() -> Result<(), wsgate::GatewayError> {
//! let config = wsgate::Config {
//!     ws_addr: "127.0.0.1:0".parse().expect("addr"),
//!     worker_addr: "127.0.0.1:0".parse().expect("addr"),
//!     ..wsgate::Config::default()
//! };
//! let gateway = wsgate::Gateway::bind(config).await?;
//! println!("clients: ws://{}/ws", gateway.ws_addr());
//! gateway.run(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod accept;
mod api;
mod auth;
mod cidr;
mod client;
mod cluster;
pub mod config;
mod connections;
mod consumers;
mod error;
mod fd_limit;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz;
mod grpc;
mod lifecycle;
mod links;
mod listen;
mod server;
mod stats;
mod throttle;
mod tls;
mod websocket;
mod worker;

pub use auth::Fallback;
pub use cluster::ClusterSlot;
pub use config::Config;
pub use connections::streams::StreamEngine;
pub use connections::streams::redis::WhenDown as WhenRedisDown;
pub use consumers::spec::Spec as ConsumerSpec;
pub use error::{ConfigError, GatewayError, TlsError};
pub use server::Gateway;
pub use stats::{BadReason, ConsumerStats, Stats};
pub use tls::TlsReloader;
pub use websocket::close_code;
