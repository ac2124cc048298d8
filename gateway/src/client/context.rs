//! What the client side uses, handed to it by the server: the settings, the connections it
//! adds and removes, the links its events go to, the authorize hook, the counters, and the
//! admission policies (JWT, handshakes per address).

use std::sync::Arc;

use bytes::Bytes;

use super::rate::HandshakeRate;
use crate::auth::AuthHook;
use crate::auth::jwt::JwtVerifier;
use crate::cidr::CidrList;
use crate::config::Config;
use crate::connections::Connections;
use crate::links::Links;
use crate::stats::Stats;

#[derive(Debug)]
pub(crate) struct Context {
    pub config: Arc<Config>,
    pub conns: Arc<Connections>,
    pub links: Arc<Links>,
    pub hook: Arc<AuthHook>,
    pub stats: Arc<Stats>,
    pub jwt: Option<JwtVerifier>,
    /// Handshakes per client address (`--handshake-rate-per-ip`), unless 0.
    pub handshake_rate: Option<HandshakeRate>,
    /// Addresses that limit does not apply to, and proxies whose forwarded address counts.
    pub rate_exempt: CidrList,
    pub trusted_proxies: CidrList,
    /// The text-heartbeat reply as a ready WebSocket frame, encoded once for every connection.
    pub heartbeat_reply: Bytes,
}
