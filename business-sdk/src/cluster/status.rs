//! What each gateway of a cluster is doing, as [`Cluster::gateways`](crate::Cluster::gateways)
//! reports it: one [`GatewayStatus`] per discovered address.

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

/// One gateway of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayStatus {
    /// Its worker address, as discovery named it.
    pub addr: String,
    /// Its node id, learned when it first registered (kept while it is down); `None` before.
    pub node_id: Option<String>,
    /// What the link is doing.
    pub state: GatewayState,
    /// Why the link is down or the last attempt failed; `None` while it is up.
    pub last_error: Option<String>,
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
