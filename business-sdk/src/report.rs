//! What a command achieved: the gateway's `Result` frame turned into a [`Report`] or an [`Error`].
//!
//! Commands that target several connections succeed partly: the gateway serves the ids it knows
//! and lists the others. Those commands return a [`Report`]; `single_cast`, which has exactly one
//! target, turns an unknown id into [`Error::UnknownConnection`] instead.

use wsgate_proto::v1::{self, ErrorCode};

use crate::error::{Error, describe, error_code};

/// The outcome of a command that may reach several connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// How many connections the message was queued for (or were closed, for `force_offline`).
    pub delivered: u32,
    /// The target ids that are not connected to this gateway; the others were still served.
    pub unknown_conn_ids: Vec<String>,
}

/// The outcome of a multi-target command: OK and UNKNOWN_CONNECTION are (partial) successes,
/// every other code is an error.
pub(crate) fn report_from_result(result: v1::Result) -> Result<Report, Error> {
    match error_code(result.code) {
        ErrorCode::Ok | ErrorCode::UnknownConnection
            if ErrorCode::try_from(result.code).is_ok() =>
        {
            Ok(Report {
                delivered: result.delivered,
                unknown_conn_ids: result.unknown_conn_ids,
            })
        }
        code => Err(Error::Gateway {
            code,
            message: describe(result.code, result.message),
        }),
    }
}

/// The outcome of a single-target command: an unknown target is an error.
pub(crate) fn single_from_result(conn_id: &str, result: v1::Result) -> Result<(), Error> {
    let unknown_code = result.code == ErrorCode::UnknownConnection as i32;
    let report = report_from_result(result)?;
    if !unknown_code && report.unknown_conn_ids.is_empty() {
        return Ok(());
    }
    let conn_ids = if report.unknown_conn_ids.is_empty() {
        vec![conn_id.to_owned()]
    } else {
        report.unknown_conn_ids
    };
    Err(Error::UnknownConnection { conn_ids })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(code: ErrorCode, delivered: u32, unknown: &[&str]) -> v1::Result {
        v1::Result {
            code: code as i32,
            message: if code == ErrorCode::Ok {
                String::new()
            } else {
                "because".into()
            },
            delivered,
            unknown_conn_ids: unknown.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn ok_is_a_report() {
        let report = report_from_result(result(ErrorCode::Ok, 3, &[])).expect("ok");
        assert_eq!(
            report,
            Report {
                delivered: 3,
                unknown_conn_ids: vec![]
            }
        );
    }

    #[test]
    fn unknown_connections_are_a_partial_success() {
        let report = report_from_result(result(ErrorCode::UnknownConnection, 1, &["gw-1-9"]))
            .expect("partial");
        assert_eq!(report.delivered, 1);
        assert_eq!(report.unknown_conn_ids, ["gw-1-9"]);
    }

    #[test]
    fn other_codes_are_gateway_errors() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::ShuttingDown,
            ErrorCode::Unsupported,
        ] {
            let err = report_from_result(result(code, 0, &[])).expect_err("error");
            assert!(
                matches!(err, Error::Gateway { code: c, ref message } if c == code && message == "because"),
                "{err:?}"
            );
        }
    }

    #[test]
    fn unknown_wire_codes_are_errors_that_keep_the_number() {
        let mut r = result(ErrorCode::Ok, 0, &[]);
        r.code = 77;
        let err = report_from_result(r).expect_err("error");
        assert!(
            matches!(err, Error::Gateway { code: ErrorCode::Unsupported, ref message } if message.contains("77"))
        );
    }

    #[test]
    fn single_cast_maps_unknown_to_an_error() {
        assert!(single_from_result("gw-1-1", result(ErrorCode::Ok, 1, &[])).is_ok());
        let err = single_from_result(
            "gw-1-2",
            result(ErrorCode::UnknownConnection, 0, &["gw-1-2"]),
        )
        .expect_err("unknown");
        assert!(
            matches!(err, Error::UnknownConnection { ref conn_ids } if conn_ids == &["gw-1-2"])
        );
        // UNKNOWN_CONNECTION without a list still names the target.
        let err = single_from_result("gw-1-3", result(ErrorCode::UnknownConnection, 0, &[]))
            .expect_err("unknown");
        assert!(
            matches!(err, Error::UnknownConnection { ref conn_ids } if conn_ids == &["gw-1-3"])
        );
        let err =
            single_from_result("gw-1-4", result(ErrorCode::BadRequest, 0, &[])).expect_err("bad");
        assert!(matches!(
            err,
            Error::Gateway {
                code: ErrorCode::BadRequest,
                ..
            }
        ));
    }
}
