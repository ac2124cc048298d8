//! The link to one gateway: dial, register, heartbeat, read events, write commands, and
//! reconnect with backoff when it is lost.
//!
//! A [`Client`](crate::Client) is one link; a [`Cluster`](crate::Cluster) runs one per
//! gateway and routes commands by the node id of each link's session. One job per file, and
//! data flows one way, from the driver down to the socket and out to the handles:
//!
//! - `driver`: the background task of one link and the SDK's one reconnect policy
//!   ([`Link`], [`FirstFailure`]).
//! - `dial`: one attempt: TCP, TLS, and the register handshake.
//! - `io`: one registered session: reader, writer and timer, the heartbeat and the table
//!   of requests waiting for their answer.
//! - `acks`: acknowledging events for the application on a link registered with acks
//!   ([`Taken`], marked when the application receives the event).
//! - `handle`: what the driver shares with the handles that send commands
//!   ([`LinkShared`], [`SessionHandle`]), and the request/reply exchange.
//! - `status`: what the link is doing ([`GatewayState`], [`LinkStatus`]).
//!
//! The protocol's rules themselves (handshake, heartbeat, request ids) are state machines of
//! the protocol crate ([`wsgate_proto::link`]); these files own the sockets and the timers.

mod acks;
mod dial;
mod driver;
mod handle;
mod io;
mod status;

pub(crate) use acks::Taken;
pub(crate) use driver::{FirstAttempt, FirstFailure, Link};
pub(crate) use handle::{LinkShared, SessionHandle};
pub use status::GatewayState;
