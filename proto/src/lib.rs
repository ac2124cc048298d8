//! The wsgate worker protocol, without any I/O.
//!
//! This crate is shared by the gateway, the Rust business SDK and anything else that speaks the
//! protocol: the generated protobuf types ([`v1`]), the length-prefixed frame codec
//! ([`codec::WorkerCodec`]) and the connection id format ([`conn_id`]). It opens no sockets and
//! spawns no tasks, so it can be tested and fuzzed alone. `docs/protocol.md` describes the wire
//! format for implementers in other languages.

pub mod codec;
pub mod conn_id;
mod payload;

/// Messages of protocol version 1, generated from `proto/wsgate/v1/worker.proto`.
#[allow(missing_docs, clippy::all, missing_debug_implementations)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/wsgate.v1.rs"));
}

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

pub use codec::{CodecError, WorkerCodec};
pub use conn_id::{ConnIdError, ConnIdGenerator};
