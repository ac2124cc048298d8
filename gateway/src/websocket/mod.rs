//! WebSocket framing as the gateway speaks it, server side (RFC 6455): the frame codec, reading
//! and writing a socket without per-connection buffers, and the close codes. A leaf: it knows
//! nothing of connections, links or commands, so every part of the gateway may use it.

/// Largest handshake request head accepted; browsers send well under 8 KiB.
pub(crate) const MAX_HEAD_BYTES: usize = 16 * 1024;

pub mod close_code;
pub(crate) mod frame;
pub(crate) mod io;
pub(crate) mod subprotocol;
