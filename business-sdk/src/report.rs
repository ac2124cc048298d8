//! What a command achieved: the gateway's `Result` frame turned into a [`Report`], a query's
//! reply, or an [`Error`].
//!
//! Commands that target several connections or users succeed partly: the gateway serves the
//! targets it knows and lists the others. Those commands return a [`Report`]; commands with
//! exactly one target connection (`single_cast`, `bind_user`, `unbind_user`, `set_session`) turn
//! an unknown id into [`Error::UnknownConnection`] instead. Queries return the reply the
//! `Result` carries; a `Result` without the expected reply is an [`Error::Gateway`].

use wsgate_proto::v1::result::Reply;
use wsgate_proto::v1::{self, ConnInfo, CountsReply, ErrorCode, ListReply, OnlineReply};

use crate::error::{Error, describe, error_code};

/// The outcome of a command that may reach several connections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// How many connections the message was queued for (or were closed, for `force_offline`).
    pub delivered: u32,
    /// The target ids that are not connected to this gateway; the others were still served.
    pub unknown_conn_ids: Vec<String>,
    /// The target users that have no connection on this gateway. Not an error: in a cluster a
    /// user may be connected to another gateway, or offline.
    pub unknown_user_ids: Vec<String>,
    /// With receipts asked for ([`Client::with_receipts`](crate::Client::with_receipts)): what
    /// became of the message for each target connection — written to its socket, gone before
    /// the cast, or dropped unwritten. Empty otherwise.
    pub receipts: Vec<v1::Receipt>,
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
                unknown_user_ids: result.unknown_user_ids,
                receipts: result.receipts,
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

/// The reply of a query: the `Result`'s code must be OK or UNKNOWN_CONNECTION (some of the
/// named connections are gone; the reply covers the others) and its `reply` must be the variant
/// `pick` accepts. `query` and `expected` name the query and the reply for the error message.
fn reply_from_result<T>(
    mut result: v1::Result,
    query: &str,
    expected: &str,
    pick: impl FnOnce(Reply) -> Result<T, Reply>,
) -> Result<T, Error> {
    let reply = result.reply.take();
    report_from_result(result)?;
    let got = match reply.map(pick) {
        Some(Ok(answer)) => return Ok(answer),
        Some(Err(other)) => reply_name(&other),
        None => "no reply",
    };
    Err(Error::Gateway {
        code: ErrorCode::Unsupported,
        message: format!(
            "the gateway sent an unexpected reply to {query}: expected {expected}, got {got}; the gateway and this SDK may speak different protocol revisions, update the older one"
        ),
    })
}

/// The proto name of a reply variant, for error messages.
fn reply_name(reply: &Reply) -> &'static str {
    match reply {
        Reply::Online(_) => "OnlineReply",
        Reply::ConnInfo(_) => "ConnInfoReply",
        Reply::Counts(_) => "CountsReply",
        Reply::List(_) => "ListReply",
    }
}

/// The answer to `QueryOnline`.
pub(crate) fn online_from_result(result: v1::Result) -> Result<OnlineReply, Error> {
    reply_from_result(result, "QueryOnline", "OnlineReply", |reply| match reply {
        Reply::Online(online) => Ok(online),
        other => Err(other),
    })
}

/// The answer to `QueryConnInfo`: the known connections (unknown ones are simply absent), and
/// the ids whose details did not fit in the reply's frame, to ask for again.
pub(crate) fn conn_info_from_result(
    result: v1::Result,
) -> Result<(Vec<ConnInfo>, Vec<String>), Error> {
    reply_from_result(
        result,
        "QueryConnInfo",
        "ConnInfoReply",
        |reply| match reply {
            Reply::ConnInfo(info) => Ok((info.conns, info.more_conn_ids)),
            other => Err(other),
        },
    )
}

/// The error for a `QueryConnInfo` answer that left connections out without answering any:
/// asking again could only repeat it.
pub(crate) fn conn_info_stuck(more: &[String]) -> Error {
    Error::Gateway {
        code: ErrorCode::LimitExceeded,
        message: format!(
            "the gateway could not fit the details of connection {} in one frame; raise its --max-frame-bytes",
            more.first().map(String::as_str).unwrap_or_default()
        ),
    }
}

/// The answer to `QueryCounts`.
pub(crate) fn counts_from_result(result: v1::Result) -> Result<CountsReply, Error> {
    reply_from_result(result, "QueryCounts", "CountsReply", |reply| match reply {
        Reply::Counts(counts) => Ok(counts),
        other => Err(other),
    })
}

/// The answer to `QueryList`.
pub(crate) fn list_from_result(result: v1::Result) -> Result<ListReply, Error> {
    reply_from_result(result, "QueryList", "ListReply", |reply| match reply {
        Reply::List(list) => Ok(list),
        other => Err(other),
    })
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
            ..v1::Result::default()
        }
    }

    fn with_reply(mut r: v1::Result, reply: Reply) -> v1::Result {
        r.reply = Some(reply);
        r
    }

    #[test]
    fn ok_is_a_report() {
        let report = report_from_result(result(ErrorCode::Ok, 3, &[])).expect("ok");
        assert_eq!(
            report,
            Report {
                delivered: 3,
                ..Report::default()
            }
        );
    }

    #[test]
    fn unknown_users_are_reported_not_errors() {
        let mut r = result(ErrorCode::Ok, 2, &[]);
        r.unknown_user_ids = vec!["bob".into()];
        let report = report_from_result(r).expect("ok");
        assert_eq!(report.delivered, 2);
        assert!(report.unknown_conn_ids.is_empty());
        assert_eq!(report.unknown_user_ids, ["bob"]);

        // Both lists at once, with UNKNOWN_CONNECTION.
        let mut r = result(ErrorCode::UnknownConnection, 1, &["gw-1-7"]);
        r.unknown_user_ids = vec!["carol".into()];
        let report = report_from_result(r).expect("partial");
        assert_eq!(report.unknown_conn_ids, ["gw-1-7"]);
        assert_eq!(report.unknown_user_ids, ["carol"]);
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

    #[test]
    fn query_replies_are_extracted() {
        let online = OnlineReply {
            conn_ids: vec!["gw-1-1".into()],
            user_ids: vec!["alice".into()],
        };
        let got = online_from_result(with_reply(
            result(ErrorCode::Ok, 0, &[]),
            Reply::Online(online.clone()),
        ))
        .expect("online");
        assert_eq!(got, online);

        let counts = CountsReply {
            connections: 3,
            users: 2,
            topics: 1,
            topic_counts: vec![v1::TopicCount {
                topic: "room".into(),
                connections: 2,
                users: 1,
            }],
        };
        let got = counts_from_result(with_reply(
            result(ErrorCode::Ok, 0, &[]),
            Reply::Counts(counts.clone()),
        ))
        .expect("counts");
        assert_eq!(got, counts);

        let list = ListReply {
            items: vec!["a".into(), "b".into()],
            next_cursor: "b".into(),
        };
        let got = list_from_result(with_reply(
            result(ErrorCode::Ok, 0, &[]),
            Reply::List(list.clone()),
        ))
        .expect("list");
        assert_eq!(got, list);
    }

    #[test]
    fn conn_info_leaves_unknown_ids_out() {
        let known = ConnInfo {
            conn_id: "gw-1-1".into(),
            user_id: "alice".into(),
            ..ConnInfo::default()
        };
        let r = with_reply(
            result(ErrorCode::UnknownConnection, 0, &["gw-1-2"]),
            Reply::ConnInfo(v1::ConnInfoReply {
                conns: vec![known.clone()],
                more_conn_ids: Vec::new(),
            }),
        );
        assert_eq!(conn_info_from_result(r).expect("partial").0, [known]);
    }

    #[test]
    fn a_missing_or_wrong_reply_is_an_error() {
        let err = online_from_result(result(ErrorCode::Ok, 0, &[])).expect_err("no reply");
        assert!(
            matches!(err, Error::Gateway { code: ErrorCode::Unsupported, ref message }
                if message.contains("unexpected reply to QueryOnline")
                    && message.contains("expected OnlineReply, got no reply")),
            "{err:?}"
        );
        let err = counts_from_result(with_reply(
            result(ErrorCode::Ok, 0, &[]),
            Reply::List(ListReply::default()),
        ))
        .expect_err("wrong reply");
        assert!(
            matches!(err, Error::Gateway { ref message, .. }
                if message.contains("expected CountsReply, got ListReply")),
            "{err:?}"
        );
        assert!(err.to_string().contains("unexpected reply"), "{err}");
    }

    #[test]
    fn a_refused_query_is_the_gateways_error_even_with_a_reply() {
        let err = list_from_result(with_reply(
            result(ErrorCode::BadRequest, 0, &[]),
            Reply::List(ListReply::default()),
        ))
        .expect_err("bad request");
        assert!(
            matches!(err, Error::Gateway { code: ErrorCode::BadRequest, ref message } if message == "because"),
            "{err:?}"
        );
    }
}
