//! The query endpoints (GET, query parameters): online checks, one connection's info, counts
//! and paged lists, each merged across the cluster by the cluster client and answered with
//! the data plus `failed`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use wsgate_business::{Error as SdkError, ListKind};

use super::context::ApiContext;
use super::errors::ApiError;
use super::extract::{PathSegment, QueryParams, comma_list};
use super::reach::{cluster, some_answered};
use super::reply::{Failure, failures};

/// The largest page a list returns (the gateways' own limit).
pub(crate) const MAX_LIMIT: u32 = 10_000;
/// The page size when `limit` is not given.
pub(crate) const DEFAULT_LIMIT: u32 = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OnlineParams {
    conn_ids: Option<String>,
    user_ids: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct OnlineReply {
    /// The asked connections that are connected, in the order asked.
    conn_ids: Vec<String>,
    /// The asked users with at least one connection, in the order asked.
    user_ids: Vec<String>,
    failed: Vec<Failure>,
}

/// GET /api/v1/online?conn_ids=a,b&user_ids=x,y: which of these are connected.
pub(crate) async fn online(
    State(context): State<ApiContext>,
    QueryParams(params): QueryParams<OnlineParams>,
) -> Result<Json<OnlineReply>, ApiError> {
    // Asking about nobody is answered: nobody.
    let conn_ids = comma_list(params.conn_ids.as_deref());
    let user_ids = comma_list(params.user_ids.as_deref());
    let cluster = cluster(&context).await?;
    let answer = cluster
        .online(conn_ids, user_ids)
        .await
        .map_err(ApiError::from_sdk)?;
    some_answered(&cluster, &answer.failed)?;
    Ok(Json(OnlineReply {
        conn_ids: answer.value.conn_ids,
        user_ids: answer.value.user_ids,
        failed: failures(answer.failed),
    }))
}

#[derive(Debug, Serialize)]
pub(crate) struct ConnectionReply {
    conn_id: String,
    /// The bound user id; empty when none is bound.
    user_id: String,
    topics: Vec<String>,
    session: HashMap<String, String>,
    remote_addr: String,
    connected_at_ms: u64,
    forwarded_for: String,
    real_ip: String,
    failed: Vec<Failure>,
}

/// GET /api/v1/connections/{conn_id}: what the owning gateway knows about a connection.
pub(crate) async fn connection(
    State(context): State<ApiContext>,
    PathSegment(conn_id): PathSegment,
) -> Result<Json<ConnectionReply>, ApiError> {
    let cluster = cluster(&context).await?;
    let answer = cluster
        .conn_info([conn_id.clone()])
        .await
        .map_err(ApiError::from_sdk)?;
    let Some(info) = answer.value.into_iter().find(|c| c.conn_id == conn_id) else {
        if answer.failed.is_empty() {
            return Err(ApiError::from_sdk(SdkError::UnknownConnection {
                conn_ids: vec![conn_id],
            }));
        }
        return Err(ApiError::none_answered(&answer.failed));
    };
    Ok(Json(ConnectionReply {
        conn_id: info.conn_id,
        user_id: info.user_id,
        topics: info.topics,
        session: info.session,
        remote_addr: info.remote_addr,
        connected_at_ms: info.connected_at_ms,
        forwarded_for: info.forwarded_for,
        real_ip: info.real_ip,
        failed: failures(answer.failed),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CountsParams {
    topics: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct TopicCountReply {
    topic: String,
    connections: u64,
    users: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct CountsReply {
    connections: u64,
    users: u64,
    topics: u64,
    topic_counts: Vec<TopicCountReply>,
    failed: Vec<Failure>,
}

/// GET /api/v1/counts?topics=a,b: connections, users and topics summed over the cluster.
pub(crate) async fn counts(
    State(context): State<ApiContext>,
    QueryParams(params): QueryParams<CountsParams>,
) -> Result<Json<CountsReply>, ApiError> {
    let topics = comma_list(params.topics.as_deref());
    let cluster = cluster(&context).await?;
    let answer = cluster.counts(topics).await.map_err(ApiError::from_sdk)?;
    some_answered(&cluster, &answer.failed)?;
    let counts = answer.value;
    Ok(Json(CountsReply {
        connections: counts.connections,
        users: counts.users,
        topics: counts.topics,
        topic_counts: counts
            .topic_counts
            .into_iter()
            .map(|t| TopicCountReply {
                topic: t.topic,
                connections: t.connections,
                users: t.users,
            })
            .collect(),
        failed: failures(answer.failed),
    }))
}

/// The list kinds as they appear in the path, with whether they read `key`.
pub(crate) const LIST_KINDS: [(&str, ListKind, bool); 6] = [
    ("connections", ListKind::Connections, false),
    ("users", ListKind::Users, false),
    ("topics", ListKind::Topics, false),
    ("topic-connections", ListKind::TopicConnections, true),
    ("topic-users", ListKind::TopicUsers, true),
    ("user-connections", ListKind::UserConnections, true),
];

/// The list kind named `name` and whether it reads `key`.
fn list_kind(name: &str) -> Result<(ListKind, bool), ApiError> {
    LIST_KINDS
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|(_, kind, needs_key)| (*kind, *needs_key))
        .ok_or_else(|| {
            let names: Vec<&str> = LIST_KINDS.iter().map(|(n, ..)| *n).collect();
            ApiError::bad_request(format!(
                "unknown list kind {name:?}; use one of {}",
                names.join(", ")
            ))
        })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    #[serde(default)]
    key: String,
    #[serde(default)]
    cursor: String,
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub(crate) struct ListReply {
    /// In ascending byte order, without repeats.
    items: Vec<String>,
    /// Pass back as `cursor` for the next page; empty on the last page.
    next_cursor: String,
    failed: Vec<Failure>,
}

/// Checks the list parameters for `kind_name`: the kind and the page size. A key is only
/// read by the kinds that list the members of one topic or user; without it their list is
/// empty (no topic or user is named "").
fn list_request(kind_name: &str, params: &ListParams) -> Result<(ListKind, u32), ApiError> {
    let (kind, _) = list_kind(kind_name)?;
    let limit = match params.limit {
        None => DEFAULT_LIMIT,
        Some(n @ 1..=MAX_LIMIT) => n,
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "limit {n} is out of range; ask for 1 to {MAX_LIMIT} items per page (default {DEFAULT_LIMIT}) and page on with cursor"
            )));
        }
    };
    Ok((kind, limit))
}

/// GET /api/v1/list/{kind}?key=&cursor=&limit=: one page of a list across the cluster.
pub(crate) async fn list(
    State(context): State<ApiContext>,
    PathSegment(kind_name): PathSegment,
    QueryParams(params): QueryParams<ListParams>,
) -> Result<Json<ListReply>, ApiError> {
    let (kind, limit) = list_request(&kind_name, &params)?;
    let cluster = cluster(&context).await?;
    let answer = cluster
        .list(kind, params.key, params.cursor, limit)
        .await
        .map_err(ApiError::from_sdk)?;
    some_answered(&cluster, &answer.failed)?;
    Ok(Json(ListReply {
        items: answer.value.items,
        next_cursor: answer.value.next_cursor,
        failed: failures(answer.failed),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(key: &str, limit: Option<u32>) -> ListParams {
        ListParams {
            key: key.into(),
            cursor: String::new(),
            limit,
        }
    }

    #[test]
    fn list_requests_are_checked() {
        assert_eq!(
            list_request("users", &params("", None)).expect("users"),
            (ListKind::Users, DEFAULT_LIMIT)
        );
        assert_eq!(
            list_request("topic-users", &params("room", Some(5))).expect("topic users"),
            (ListKind::TopicUsers, 5)
        );
        let bad_kind = list_request("rooms", &params("", None)).expect_err("kind");
        assert!(
            bad_kind.message.contains("topic-connections"),
            "{}",
            bad_kind.message
        );
        assert!(list_request("user-connections", &params("", None)).is_ok());
        assert!(list_request("topics", &params("x", None)).is_ok());
        assert!(list_request("users", &params("", Some(MAX_LIMIT + 1))).is_err());
        assert!(list_request("users", &params("", Some(0))).is_err());
    }
}
