//! The client side: the WebSocket listener, the HTTP handshake and one task per client
//! connection.

pub(crate) mod accept;
pub(crate) mod connection;
pub(crate) mod handshake;
