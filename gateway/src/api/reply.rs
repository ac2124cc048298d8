//! The JSON success bodies shared by the endpoints: what a command achieved, and the gateways
//! that did not answer (`failed`, present in every success body, empty when all answered).

use serde::Serialize;
use wsgate_business::{ClusterReport, GatewayFailure};

/// A gateway that did not answer (its part is missing from the answer).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct Failure {
    /// Its node id, or its address when it never registered.
    pub gateway: String,
    /// Why, for a person.
    pub error: String,
}

/// `failed` as JSON.
pub(crate) fn failures(failed: Vec<GatewayFailure>) -> Vec<Failure> {
    failed
        .into_iter()
        .map(|f| Failure {
            gateway: f.gateway,
            error: f.error,
        })
        .collect()
}

/// What a command achieved.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub(crate) struct CommandReply {
    /// Connections the message was queued for (closed, for force-offline; changed, for the
    /// single-connection and topic commands).
    pub delivered: u32,
    /// Named connections that are not connected.
    pub unknown_conn_ids: Vec<String>,
    /// Named users with no connection on any gateway that answered.
    pub unknown_user_ids: Vec<String>,
    pub failed: Vec<Failure>,
}

impl CommandReply {
    /// A single-connection command that was carried out.
    pub fn one() -> Self {
        Self {
            delivered: 1,
            ..Self::default()
        }
    }
}

impl From<ClusterReport> for CommandReply {
    fn from(r: ClusterReport) -> Self {
        Self {
            delivered: r.report.delivered,
            unknown_conn_ids: r.report.unknown_conn_ids,
            unknown_user_ids: r.report.unknown_user_ids,
            failed: failures(r.failed),
        }
    }
}
