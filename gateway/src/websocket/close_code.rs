//! The WebSocket close codes the gateway sends (RFC 6455 section 7.4, and the 4000-4099 range
//! the gateway keeps for its own reasons; business processes choose theirs from 3000-4999).

pub const NORMAL: u16 = 1000;
pub const GOING_AWAY: u16 = 1001;
pub const PROTOCOL_ERROR: u16 = 1002;
pub const ABNORMAL: u16 = 1006;
pub const POLICY_VIOLATION: u16 = 1008;
pub const TOO_BIG: u16 = 1009;
pub const INTERNAL_ERROR: u16 = 1011;
pub const SERVICE_RESTART: u16 = 1012;
pub const IDLE_TIMEOUT: u16 = 4000;
pub const SLOW_CONSUMER: u16 = 4001;
pub const GUEST_TIMEOUT: u16 = 4002;
/// The user opened more connections than allowed; this, its oldest, was closed.
pub const REPLACED: u16 = 4004;
