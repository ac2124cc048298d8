//! The client side: the WebSocket listener and one task per client connection.

pub(crate) mod accept;
pub(crate) mod connection;
