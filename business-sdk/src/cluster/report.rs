//! What a cluster command achieved: the merged outcome of every gateway that answered, plus the
//! gateways that did not.
//!
//! A command sent to several gateways succeeds partly when some of them are down, slow or
//! refuse it. Those gateways are never skipped silently: each is named in `failed` with the
//! reason, next to the merged [`Report`] ([`ClusterReport`]) or query answer ([`Partial`]).

use std::fmt;

use crate::report::Report;

/// A gateway that did not carry out (its part of) a cluster command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayFailure {
    /// The gateway's node id; its address when the node id is not known (it never registered).
    pub gateway: String,
    /// Why, for a person: not connected, timed out, disconnected before answering, or refused.
    pub error: String,
}

impl fmt::Display for GatewayFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gateway {}: {}", self.gateway, self.error)
    }
}

/// The outcome of a cluster command that may reach several gateways.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterReport {
    /// The gateways' reports merged: `delivered` summed, `unknown_conn_ids` concatenated (plus
    /// ids that are not wsgate connection ids at all), and `unknown_user_ids` = the users
    /// unknown on every gateway that answered (a user is only unknown to the cluster when no
    /// gateway knows them; empty when no gateway answered).
    pub report: Report,
    /// The gateways that did not answer or refused; see [`GatewayFailure`].
    pub failed: Vec<GatewayFailure>,
}

impl ClusterReport {
    /// Whether every gateway concerned answered.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

/// A cluster query's merged answer, and the gateways whose part is missing from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Partial<T> {
    /// The merged answer of the gateways that answered.
    pub value: T,
    /// The gateways that did not answer or refused; their part is missing from `value`.
    pub failed: Vec<GatewayFailure>,
}

impl<T> Partial<T> {
    /// Whether every gateway concerned answered, so `value` is the whole answer.
    pub fn is_complete(&self) -> bool {
        self.failed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_gateway() {
        let f = GatewayFailure {
            gateway: "gw2".into(),
            error: "timed out".into(),
        };
        assert_eq!(f.to_string(), "gateway gw2: timed out");
        let report = ClusterReport {
            failed: vec![f],
            ..ClusterReport::default()
        };
        assert!(!report.is_complete());
        assert!(Partial::<u32>::default().is_complete());
    }
}
