//! The `Result` a command answers with: how many it reached, which named connections or users
//! are unknown, or why it was refused as a whole. Commands and queries both build their
//! answers here, so an unknown connection reads the same whichever command named it.

use wsgate_proto::v1::{ErrorCode, Result as CmdResult};
use wsgate_proto::validate::Refused;

/// What a command handler returns: its answer, or a refusal that changed nothing.
pub(crate) type Outcome = Result<CmdResult, Refused>;

/// The answer to a command refused as a whole.
pub(crate) fn refused(refused: Refused) -> CmdResult {
    CmdResult {
        code: refused.code as i32,
        message: refused.message,
        ..Default::default()
    }
}

/// `delivered` reached; `unknown` named but not connected here.
pub(crate) fn report(delivered: u32, unknown: Vec<String>) -> CmdResult {
    report_users(delivered, unknown, Vec::new())
}

/// The same, with the users named that have no connection here.
pub(crate) fn report_users(
    delivered: u32,
    unknown: Vec<String>,
    unknown_users: Vec<String>,
) -> CmdResult {
    if unknown.is_empty() {
        return CmdResult {
            delivered,
            unknown_user_ids: unknown_users,
            ..Default::default()
        };
    }
    let message = match unknown.as_slice() {
        [one] => format!(
            "connection {one} is not connected to this gateway (it has closed, or belongs to another gateway)"
        ),
        many => format!(
            "{} connections are not connected to this gateway (they have closed, or belong to another gateway)",
            many.len()
        ),
    };
    CmdResult {
        code: ErrorCode::UnknownConnection as i32,
        message,
        delivered,
        unknown_conn_ids: unknown,
        unknown_user_ids: unknown_users,
        ..Default::default()
    }
}

/// The answer of a command on one connection: done, or `conn_id` is unknown.
pub(crate) fn one_conn(conn_id: String, done: bool) -> CmdResult {
    if done {
        report(1, Vec::new())
    } else {
        report(0, vec![conn_id])
    }
}
