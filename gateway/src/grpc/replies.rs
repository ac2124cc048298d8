//! The gRPC API's answers: the cluster client's reports and partial query answers turned into
//! the `api.proto` response messages, each with the gateways that did not answer in `failed`.

use std::collections::HashSet;

use wsgate_business::{ClusterReport, Partial};
use wsgate_proto::conn_id;
use wsgate_proto::v1::{
    CommandResponse, ConnInfo, ConnInfoResponse, CountsReply, CountsResponse, GatewayFailure,
    ListReply, ListResponse, OnlineReply, OnlineResponse,
};

/// The SDK's failures as proto messages.
fn failures(failed: Vec<wsgate_business::GatewayFailure>) -> Vec<GatewayFailure> {
    failed
        .into_iter()
        .map(|f| GatewayFailure {
            gateway: f.gateway,
            error: f.error,
        })
        .collect()
}

/// A multi-target command's merged report.
pub(crate) fn command(report: ClusterReport) -> CommandResponse {
    CommandResponse {
        delivered: report.report.delivered,
        unknown_conn_ids: report.report.unknown_conn_ids,
        unknown_user_ids: report.report.unknown_user_ids,
        failed: failures(report.failed),
        receipts: report.report.receipts,
    }
}

/// A single-connection command that succeeded: its one connection was served.
pub(crate) fn single() -> CommandResponse {
    CommandResponse {
        delivered: 1,
        ..CommandResponse::default()
    }
}

pub(crate) fn online(answer: Partial<OnlineReply>) -> OnlineResponse {
    OnlineResponse {
        conn_ids: answer.value.conn_ids,
        user_ids: answer.value.user_ids,
        failed: failures(answer.failed),
    }
}

/// ConnInfo's answer; `asked` lists the connection ids of the query. An asked id that is not
/// in the answer is unknown unless its gateway is among the failed ones (then nobody knows).
pub(crate) fn conn_info(asked: &[String], answer: Partial<Vec<ConnInfo>>) -> ConnInfoResponse {
    let known: HashSet<&str> = answer.value.iter().map(|c| c.conn_id.as_str()).collect();
    let failed_nodes: HashSet<&str> = answer.failed.iter().map(|f| f.gateway.as_str()).collect();
    let mut seen = HashSet::new();
    let unknown_conn_ids = asked
        .iter()
        .filter(|id| !known.contains(id.as_str()) && seen.insert(id.as_str()))
        .filter(|id| conn_id::node_of(id).is_none_or(|node| !failed_nodes.contains(node)))
        .cloned()
        .collect();
    ConnInfoResponse {
        conns: answer.value,
        unknown_conn_ids,
        failed: failures(answer.failed),
    }
}

pub(crate) fn counts(answer: Partial<CountsReply>) -> CountsResponse {
    CountsResponse {
        connections: answer.value.connections,
        users: answer.value.users,
        topics: answer.value.topics,
        topic_counts: answer.value.topic_counts,
        failed: failures(answer.failed),
    }
}

pub(crate) fn list(answer: Partial<ListReply>) -> ListResponse {
    ListResponse {
        items: answer.value.items,
        next_cursor: answer.value.next_cursor,
        failed: failures(answer.failed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::combine;
    use wsgate_business::Report;

    fn failure(gateway: &str) -> wsgate_business::GatewayFailure {
        wsgate_business::GatewayFailure {
            gateway: gateway.into(),
            error: "timed out".into(),
        }
    }

    #[test]
    fn unknown_conn_info_leaves_out_failed_gateways() {
        let asked: Vec<String> = ["gw1-1-1", "gw1-1-2", "gw2-1-1", "junk", "gw1-1-2"]
            .map(String::from)
            .to_vec();
        let answer = Partial {
            value: vec![ConnInfo {
                conn_id: "gw1-1-1".into(),
                ..ConnInfo::default()
            }],
            failed: vec![failure("gw2")],
        };
        let reply = conn_info(&asked, answer);
        assert_eq!(reply.unknown_conn_ids, ["gw1-1-2", "junk"]);
        assert_eq!(reply.conns.len(), 1);
        assert_eq!(reply.failed[0].gateway, "gw2");
    }

    #[test]
    fn two_parts_combine() {
        let part = |delivered, conn: &str, user: &str, failed: &str| ClusterReport {
            report: Report {
                delivered,
                unknown_conn_ids: vec![conn.into()],
                unknown_user_ids: vec![user.into()],
                receipts: Vec::new(),
            },
            failed: vec![failure(failed)],
        };
        let both = command(combine(part(2, "a", "x", "gw2"), part(3, "b", "y", "gw2")));
        assert_eq!(both.delivered, 5);
        assert_eq!(both.unknown_conn_ids, ["a", "b"]);
        assert_eq!(both.unknown_user_ids, ["x", "y"]);
        assert_eq!(both.failed.len(), 1);
    }
}
