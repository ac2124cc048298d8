//! The JSON success bodies shared by the endpoints: what a command achieved, and the gateways
//! that did not answer (`failed`, present in every success body, empty when all answered).

use serde::Serialize;
use wsgate_business::{ClusterReport, Delivery, GatewayFailure, Receipt};

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
    /// Each target connection's outcome; only when the cast asked for receipts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipts: Option<Vec<ReceiptReply>>,
}

/// One connection's receipt.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct ReceiptReply {
    pub conn_id: String,
    /// `written`, `gone`, `dropped`, `acked` or `unacked`.
    pub delivery: &'static str,
}

impl ReceiptReply {
    fn of(r: Receipt) -> Self {
        let delivery = match r.delivery() {
            Delivery::Written => "written",
            Delivery::Gone => "gone",
            Delivery::Acked => "acked",
            Delivery::Unacked => "unacked",
            // What this gateway does not know yet (a newer peer's outcome) reads as not written.
            Delivery::Dropped | Delivery::Unspecified => "dropped",
        };
        Self {
            conn_id: r.conn_id,
            delivery,
        }
    }
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
        Self::of(r, false)
    }
}

impl CommandReply {
    /// The reply to a command; `receipts` listed when the cast asked for them.
    pub fn of(r: ClusterReport, receipts: bool) -> Self {
        let listed = receipts.then(|| {
            r.report
                .receipts
                .into_iter()
                .map(ReceiptReply::of)
                .collect()
        });
        Self {
            delivered: r.report.delivered,
            unknown_conn_ids: r.report.unknown_conn_ids,
            unknown_user_ids: r.report.unknown_user_ids,
            failed: failures(r.failed),
            receipts: listed,
        }
    }
}
