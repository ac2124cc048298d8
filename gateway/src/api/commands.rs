//! The command endpoints (POST, JSON bodies): each checks its body, calls the cluster client
//! once and answers with a [`CommandReply`].
//!
//! Single-connection commands (send, bind, unbind, session) answer `delivered: 1`, or 404
//! `unknown_connection` when the connection is gone. The others report how many connections
//! they reached and which ids or users were unknown, like the worker protocol's `Result`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use wsgate_business::{ClusterReport, SessionChange, Targets};

use super::context::ApiContext;
use super::errors::ApiError;
use super::extract::JsonBody;
use super::payload;
use super::reach::{cluster, some_answered};
use super::reply::CommandReply;
use crate::cluster::combine;

type Reply = Result<Json<CommandReply>, ApiError>;

/// A required id or name that must not be empty.
fn required(value: &str, field: &str, what: &str) -> Result<(), ApiError> {
    if value.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{field} is empty; set it to {what}"
        )));
    }
    Ok(())
}

/// A list that must name at least one item.
fn non_empty(list: &[String], field: &str, what: &str) -> Result<(), ApiError> {
    if list.is_empty() {
        return Err(ApiError::bad_request(format!(
            "{field} is empty; list at least one {what}"
        )));
    }
    Ok(())
}

/// A cluster report as the reply, or 503 when no gateway answered.
fn report(cluster: &wsgate_business::Cluster, report: ClusterReport) -> Reply {
    some_answered(cluster, &report.failed)?;
    Ok(Json(report.into()))
}

const CONN_ID: &str = "a connection id from a ConnOpen event";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SendBody {
    conn_id: String,
    #[serde(default, deserialize_with = "payload::present")]
    text: Option<String>,
    #[serde(default, deserialize_with = "payload::present")]
    binary: Option<String>,
}

/// POST /api/v1/send: one message to one connection.
pub(crate) async fn send(
    State(context): State<ApiContext>,
    JsonBody(body): JsonBody<SendBody>,
) -> Reply {
    required(&body.conn_id, "conn_id", CONN_ID)?;
    let payload = payload::required(body.text, body.binary)?;
    let cluster = cluster(&context).await?;
    cluster
        .single_cast(body.conn_id, payload)
        .await
        .map_err(ApiError::from_sdk)?;
    Ok(Json(CommandReply::one()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MulticastBody {
    conn_ids: Vec<String>,
    #[serde(default, deserialize_with = "payload::present")]
    text: Option<String>,
    #[serde(default, deserialize_with = "payload::present")]
    binary: Option<String>,
}

/// POST /api/v1/multicast: one message to several connections.
pub(crate) async fn multicast(
    State(context): State<ApiContext>,
    JsonBody(body): JsonBody<MulticastBody>,
) -> Reply {
    non_empty(&body.conn_ids, "conn_ids", "connection id")?;
    let payload = payload::required(body.text, body.binary)?;
    let cluster = cluster(&context).await?;
    let r = cluster
        .multicast(body.conn_ids, payload)
        .await
        .map_err(ApiError::from_sdk)?;
    report(&cluster, r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BroadcastBody {
    #[serde(default, deserialize_with = "payload::present")]
    text: Option<String>,
    #[serde(default, deserialize_with = "payload::present")]
    binary: Option<String>,
    #[serde(default)]
    exclude_conn_ids: Vec<String>,
}

/// POST /api/v1/broadcast: one message to every connection of the cluster.
pub(crate) async fn broadcast(
    State(context): State<ApiContext>,
    JsonBody(body): JsonBody<BroadcastBody>,
) -> Reply {
    let payload = payload::required(body.text, body.binary)?;
    let cluster = cluster(&context).await?;
    let r = cluster
        .broadcast(payload, body.exclude_conn_ids)
        .await
        .map_err(ApiError::from_sdk)?;
    report(&cluster, r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsersSendBody {
    user_ids: Vec<String>,
    #[serde(default, deserialize_with = "payload::present")]
    text: Option<String>,
    #[serde(default, deserialize_with = "payload::present")]
    binary: Option<String>,
    #[serde(default)]
    exclude_conn_ids: Vec<String>,
}

/// POST /api/v1/users/send: one message to every connection of these users.
pub(crate) async fn send_to_users(
    State(context): State<ApiContext>,
    JsonBody(body): JsonBody<UsersSendBody>,
) -> Reply {
    non_empty(&body.user_ids, "user_ids", "user id")?;
    let payload = payload::required(body.text, body.binary)?;
    let cluster = cluster(&context).await?;
    let r = cluster
        .send_to_users(body.user_ids, payload, body.exclude_conn_ids)
        .await
        .map_err(ApiError::from_sdk)?;
    report(&cluster, r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishBody {
    topics: Vec<String>,
    #[serde(default, deserialize_with = "payload::present")]
    text: Option<String>,
    #[serde(default, deserialize_with = "payload::present")]
    binary: Option<String>,
    #[serde(default)]
    exclude_conn_ids: Vec<String>,
}

/// POST /api/v1/topics/publish: one message to every member of these topics.
pub(crate) async fn publish(
    State(context): State<ApiContext>,
    JsonBody(body): JsonBody<PublishBody>,
) -> Reply {
    non_empty(&body.topics, "topics", "topic")?;
    let payload = payload::required(body.text, body.binary)?;
    let cluster = cluster(&context).await?;
    let r = cluster
        .publish(body.topics, payload, body.exclude_conn_ids)
        .await
        .map_err(ApiError::from_sdk)?;
    report(&cluster, r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BindBody {
    conn_id: String,
    user_id: String,
}

/// POST /api/v1/users/bind: binds a user id to a connection.
pub(crate) async fn bind_user(
    State(context): State<ApiContext>,
    JsonBody(body): JsonBody<BindBody>,
) -> Reply {
    required(&body.conn_id, "conn_id", CONN_ID)?;
    required(&body.user_id, "user_id", "the user's id")?;
    let cluster = cluster(&context).await?;
    cluster
        .bind_user(body.conn_id, body.user_id)
        .await
        .map_err(ApiError::from_sdk)?;
    Ok(Json(CommandReply::one()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UnbindBody {
    conn_id: String,
}

/// POST /api/v1/users/unbind: removes a connection's user binding.
pub(crate) async fn unbind_user(
    State(context): State<ApiContext>,
    JsonBody(body): JsonBody<UnbindBody>,
) -> Reply {
    required(&body.conn_id, "conn_id", CONN_ID)?;
    let cluster = cluster(&context).await?;
    cluster
        .unbind_user(body.conn_id)
        .await
        .map_err(ApiError::from_sdk)?;
    Ok(Json(CommandReply::one()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TopicsBody {
    topics: Vec<String>,
    #[serde(default)]
    conn_ids: Vec<String>,
    #[serde(default)]
    user_ids: Vec<String>,
}

impl TopicsBody {
    fn checked(self) -> Result<(Vec<String>, Targets), ApiError> {
        non_empty(&self.topics, "topics", "topic")?;
        let targets = Targets {
            conn_ids: self.conn_ids,
            user_ids: self.user_ids,
        };
        if targets.is_empty() {
            return Err(ApiError::bad_request(
                "conn_ids and user_ids are both empty; list the connections and/or the users (all their current connections) to act on",
            ));
        }
        Ok((self.topics, targets))
    }
}

/// POST /api/v1/topics/subscribe: adds connections (or users' connections) to topics.
pub(crate) async fn subscribe(
    State(context): State<ApiContext>,
    JsonBody(body): JsonBody<TopicsBody>,
) -> Reply {
    let (topics, targets) = body.checked()?;
    let cluster = cluster(&context).await?;
    let r = cluster
        .subscribe(topics, targets)
        .await
        .map_err(ApiError::from_sdk)?;
    report(&cluster, r)
}

/// POST /api/v1/topics/unsubscribe: removes connections (or users' connections) from topics.
pub(crate) async fn unsubscribe(
    State(context): State<ApiContext>,
    JsonBody(body): JsonBody<TopicsBody>,
) -> Reply {
    let (topics, targets) = body.checked()?;
    let cluster = cluster(&context).await?;
    let r = cluster
        .unsubscribe(topics, targets)
        .await
        .map_err(ApiError::from_sdk)?;
    report(&cluster, r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeleteTopicsBody {
    topics: Vec<String>,
}

/// POST /api/v1/topics/delete: removes every member from these topics.
pub(crate) async fn delete_topics(
    State(context): State<ApiContext>,
    JsonBody(body): JsonBody<DeleteTopicsBody>,
) -> Reply {
    non_empty(&body.topics, "topics", "topic")?;
    let cluster = cluster(&context).await?;
    let r = cluster
        .delete_topics(body.topics)
        .await
        .map_err(ApiError::from_sdk)?;
    report(&cluster, r)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SessionBody {
    conn_id: String,
    #[serde(default)]
    set: HashMap<String, String>,
    #[serde(default)]
    delete: Vec<String>,
    #[serde(default)]
    replace: bool,
}

impl SessionBody {
    /// The change as the gateway applies it: `delete` first, then `set` (a key in both ends
    /// up set); with `replace` the session becomes exactly `set`, so `delete` changes nothing.
    fn change(self) -> Result<(String, SessionChange), ApiError> {
        required(&self.conn_id, "conn_id", CONN_ID)?;
        let mut change = SessionChange::new();
        for key in self.delete {
            change = change.delete(key);
        }
        for (key, value) in self.set {
            change = change.set(key, value);
        }
        if self.replace {
            change = change.replace_all();
        }
        Ok((self.conn_id, change))
    }
}

/// POST /api/v1/session: changes a connection's session data.
pub(crate) async fn set_session(
    State(context): State<ApiContext>,
    JsonBody(body): JsonBody<SessionBody>,
) -> Reply {
    let (conn_id, change) = body.change()?;
    let cluster = cluster(&context).await?;
    cluster
        .set_session(conn_id, change)
        .await
        .map_err(ApiError::from_sdk)?;
    Ok(Json(CommandReply::one()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForceOfflineBody {
    #[serde(default)]
    conn_ids: Vec<String>,
    #[serde(default)]
    user_ids: Vec<String>,
    /// Checked against u16 here, so an out-of-range code gets a message naming the field.
    #[serde(default)]
    code: i64,
    #[serde(default)]
    reason: String,
    #[serde(default, deserialize_with = "payload::present")]
    last_text: Option<String>,
    #[serde(default, deserialize_with = "payload::present")]
    last_binary: Option<String>,
}

/// POST /api/v1/force-offline: closes connections (and every connection of users) from the
/// server side, optionally sending a last message first.
pub(crate) async fn force_offline(
    State(context): State<ApiContext>,
    JsonBody(body): JsonBody<ForceOfflineBody>,
) -> Reply {
    if body.conn_ids.is_empty() && body.user_ids.is_empty() {
        return Err(ApiError::bad_request(
            "conn_ids and user_ids are both empty; list the connections and/or the users to close",
        ));
    }
    let code = u16::try_from(body.code).map_err(|_| {
        ApiError::bad_request(format!(
            "code {} is not a WebSocket close code; use 1000 or an application code from 3000 to 4999 (or leave it out for 1000)",
            body.code
        ))
    })?;
    let last = payload::optional(body.last_text, body.last_binary, "last_text", "last_binary")?;
    let cluster = cluster(&context).await?;
    let mut merged = ClusterReport::default();
    if !body.user_ids.is_empty() {
        let r = cluster
            .force_offline_users(body.user_ids, code, &body.reason, last.clone())
            .await
            .map_err(ApiError::from_sdk)?;
        merged = combine(merged, r);
    }
    if !body.conn_ids.is_empty() {
        let r = cluster
            .force_offline(body.conn_ids, code, &body.reason, last)
            .await
            .map_err(ApiError::from_sdk)?;
        merged = combine(merged, r);
    }
    report(&cluster, merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(json: &str) -> Result<(String, SessionChange), ApiError> {
        serde_json::from_str::<SessionBody>(json)
            .map_err(|e| ApiError::bad_request(e.to_string()))?
            .change()
    }

    #[test]
    fn session_bodies_are_checked() {
        let (conn, change) =
            session(r#"{"conn_id":"c","set":{"a":"1"},"delete":["b"]}"#).expect("valid edit");
        assert_eq!(conn, "c");
        assert_eq!(change, SessionChange::new().delete("b").set("a", "1"));
        // A key in both is set; delete beside replace changes nothing. Both are accepted, as
        // the schema says.
        assert!(session(r#"{"conn_id":"c","delete":["a"],"replace":true}"#).is_ok());
        assert!(session(r#"{"conn_id":"c","set":{"a":"1"},"delete":["a"]}"#).is_ok());
        assert!(session(r#"{"conn_id":""}"#).is_err());
    }

    #[test]
    fn topic_bodies_need_targets() {
        let body: TopicsBody = serde_json::from_str(r#"{"topics":["t"]}"#).expect("json");
        assert!(body.checked().is_err());
        let body: TopicsBody =
            serde_json::from_str(r#"{"topics":["t"],"user_ids":["u"]}"#).expect("json");
        let (topics, targets) = body.checked().expect("valid");
        assert_eq!(topics, ["t"]);
        assert_eq!(targets, Targets::user("u"));
    }

    #[test]
    fn merged_reports_keep_one_failure_per_gateway() {
        let failure = |g: &str| wsgate_business::GatewayFailure {
            gateway: g.into(),
            error: "down".into(),
        };
        let mut into = ClusterReport::default();
        into.report.delivered = 2;
        into.failed.push(failure("gw1"));
        let mut more = ClusterReport::default();
        more.report.delivered = 1;
        more.report.unknown_conn_ids.push("x".into());
        more.failed = vec![failure("gw1"), failure("gw2")];
        let into = combine(into, more);
        assert_eq!(into.report.delivered, 3);
        assert_eq!(into.report.unknown_conn_ids, ["x"]);
        assert_eq!(into.failed.len(), 2);
    }
}
