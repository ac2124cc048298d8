//! Deciding who may open a connection: JWT checks and the authorize hook, both run during the
//! HTTP handshake, before the upgrade.

pub(crate) mod hook;
pub(crate) mod jwt;

pub use hook::Fallback;
pub(crate) use hook::{AuthHook, Decision};

/// The subprotocol a browser offers to carry its token: `new WebSocket(url, ["wsgate.jwt", token])`.
pub(crate) const SUBPROTOCOL: &str = "wsgate.jwt";
