//! What a link is doing ([`LinkStatus`], [`GatewayState`]): written by its driver, read by
//! [`Cluster::gateways`](crate::Cluster::gateways) and by the failures a cluster reports for
//! a gateway that is down.

use std::fmt;

/// The state of the link to one gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GatewayState {
    /// The first attempt to register is still under way.
    Connecting,
    /// Registered: commands are routed to it.
    Up,
    /// Registered, and the gateway said it is shutting down
    /// ([`Event::Draining`](crate::Event::Draining)): commands for its connections still work
    /// until it closes the link.
    Draining,
    /// Not registered: the link was lost or attempts fail; the SDK retries with backoff.
    /// Commands for its connections fail with
    /// [`Error::GatewayUnavailable`](crate::Error::GatewayUnavailable).
    Down,
}

impl GatewayState {
    /// A lower-case name for logs and status pages: `connecting`, `up`, `draining`, `down`.
    pub fn as_str(self) -> &'static str {
        match self {
            GatewayState::Connecting => "connecting",
            GatewayState::Up => "up",
            GatewayState::Draining => "draining",
            GatewayState::Down => "down",
        }
    }
}

impl fmt::Display for GatewayState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a link is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkStatus {
    pub(crate) state: GatewayState,
    /// The node id of the last registration (kept while the link is down).
    pub(crate) node_id: Option<String>,
    /// Why the link is down, or why the last attempt failed.
    pub(crate) last_error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_have_short_names() {
        let names: Vec<_> = [
            GatewayState::Connecting,
            GatewayState::Up,
            GatewayState::Draining,
            GatewayState::Down,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(names, ["connecting", "up", "draining", "down"]);
    }
}
